"""The worker side of the sandbox protocol: generic, whatever the job is.

A sandboxed worker reads ``job.json`` from its folder, runs its job, and always leaves a
``result.json`` with a status and a reason (``run_job``). While it runs it may ask the
orchestrator questions over a private pipe (``Channel``): one JSON object a line each way.
Nothing here knows what a candidate or a compression job is.
"""

from __future__ import annotations

import errno
import json
import os
import traceback
from pathlib import Path

PROTOCOL_ENV = "EVOFORMER_PROTOCOL_FDS"
JOB_FILE = "job.json"
RESULT_FILE = "result.json"


class Outcome(Exception):
    """Ends the job with this status and reason (``run_job`` turns it into the result)."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def memory_outcome(exc: BaseException) -> Outcome | None:
    """An allocation failure under the memory cap counts as 'killed', whoever caught it."""
    text = str(exc)
    if isinstance(exc, MemoryError) or "can't allocate memory" in text or "Cannot allocate memory" in text:
        return Outcome("killed", f"memory limit reached: {text[:300]}")
    return None


def disk_outcome(exc: BaseException) -> Outcome | None:
    """A write refused for space (the sandbox's size-limited file system is full) counts as
    'killed' for the disk quota, whoever caught it. The runner measures the quota itself too."""
    no_space = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if no_space or "No space left on device" in str(exc):
        return Outcome("killed", f"disk quota reached (no space left in the sandbox): {str(exc)[:300]}")
    return None


def limit_outcome(exc: BaseException) -> Outcome | None:
    """The memory or the disk limit, if one of them is why ``exc`` happened."""
    return memory_outcome(exc) or disk_outcome(exc)


class Channel:
    """Line-delimited JSON over the two pipe descriptors the runner passed in."""

    def __init__(self) -> None:
        spec = os.environ.get(PROTOCOL_ENV, "")
        read_fd, write_fd = (int(x) for x in spec.split(",")) if spec else (None, None)
        self.reader = os.fdopen(read_fd, "r") if read_fd is not None else None
        self.write_fd = write_fd

    def ask(self, message: dict) -> dict:
        if self.reader is None or self.write_fd is None:
            return {}
        os.write(self.write_fd, (json.dumps(message) + "\n").encode())
        line = self.reader.readline()
        return json.loads(line) if line else {"stop": True}


def run_job(folder: Path, job_model, body, result_model) -> int:
    """Read the job, run ``body(folder, job)``, and write whatever happened as ``result.json``:
    every failure becomes a result with a status and a reason. ``job_model`` and ``result_model``
    are pydantic models; ``result_model`` takes ``status`` and ``reason``."""
    job = job_model.model_validate_json((folder / JOB_FILE).read_text())
    try:
        result = body(folder, job)
    except Outcome as outcome:
        result = result_model(status=outcome.status, reason=outcome.reason)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a result
        traceback.print_exc()
        limit = limit_outcome(exc) or Outcome("runtime_error", f"{type(exc).__name__}: {str(exc)[:500]}")
        result = result_model(status=limit.status, reason=limit.reason)
    (folder / RESULT_FILE).write_text(result.model_dump_json())
    return 0
