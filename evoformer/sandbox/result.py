"""What every sandboxed worker's ``result.json`` holds, whatever its job."""

from __future__ import annotations

from pydantic import BaseModel


class WorkerOutcome(BaseModel):
    """The status and reason of one sandboxed run; job results add their own fields."""

    status: str
    reason: str = ""
