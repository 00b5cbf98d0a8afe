"""Thread-safe ``ast.parse``.

CPython 3.11 keeps the AST converter's recursion depth in interpreter-wide state, so two threads
parsing at the same time can fail with ``SystemError: AST constructor recursion depth mismatch``
(python/cpython#106905). Evolve writes children in parallel threads (one ``propose-child`` task
each), so every parse in the orchestrating process goes through this one lock.
"""

from __future__ import annotations

import ast
import threading
from typing import Literal, overload

_LOCK = threading.Lock()


@overload
def parse(source: str, mode: Literal["exec"] = "exec") -> ast.Module: ...
@overload
def parse(source: str, mode: Literal["eval"]) -> ast.Expression: ...


def parse(source: str, mode: Literal["exec", "eval"] = "exec") -> ast.Module | ast.Expression:
    """``ast.parse(source, mode=mode)``, one thread at a time."""
    with _LOCK:
        return ast.parse(source, mode="eval") if mode == "eval" else ast.parse(source)
