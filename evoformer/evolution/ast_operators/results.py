"""What the AST operators hand back: a child (``AstEdit``), a program's mutable places (``Slot``) and the
error raised when no valid child can be made."""

from __future__ import annotations

from pydantic import BaseModel


class AstEdit(BaseModel):
    """A child program and what was changed to make it."""

    source: str
    description: str
    kinds: list[str] = []


class Slot(BaseModel):
    """One mutable place of a program: a hyper-parameter value or a structural edit site."""

    kind: str
    key: str
    label: str
    value: int | float | str | None = None
    line: int = 0


class OperatorError(ValueError):
    """No valid child could be made."""
