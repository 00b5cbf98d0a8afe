"""The smoke check: a program's build, one forward and one backward pass on a tiny batch, then
eval-mode passes on the shortest and longest inputs, in the sandbox, in seconds (a training takes
minutes). The LLM operator runs it on every reply, so a broken child costs a few seconds and its
error goes back to the model for repair.

No label leaves the orchestrator for it: the tiny batch is trained towards made-up labels
(``row % num_classes``); only the mechanics are checked.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evoformer.candidates.evaluate import WORKER_MODULE, read_result
from evoformer.candidates.job import (
    JOB_FILE,
    PROGRAM_FILE,
    RESULT_FILE,
    TRAIN_LABELS_FILE,
    Status,
    TrainJob,
    WorkerResult,
)
from evoformer.candidates.program import CandidateProgram
from evoformer.candidates.static_check import StaticCheckConfig, check_source
from evoformer.features.store import load_manifest
from evoformer.labels import LABELS
from evoformer.sandbox.limits import SandboxLimits
from evoformer.sandbox.runner import run_sandboxed

SMOKE_TIMEOUT_S = 120.0
"""A smoke run builds and steps once; a program that needs longer would not train in its budget either."""


@dataclass(frozen=True)
class SmokeCheck:
    """``check(source)`` for the LLM operator: None when the program passes the static check and
    the smoke run, else the error to show the model (status, reason and the traceback's tail).
    Each call runs in a fresh ``folder/<n>/``."""

    prelude: str
    static: StaticCheckConfig
    features_path: str
    limits: SandboxLimits
    folder: Path

    def __call__(self, source: str) -> str | None:
        program = CandidateProgram(name="smoke", source=source, prelude=self.prelude)
        report = check_source(program.full_source(), self.static)
        if not report.ok:
            return "rejected by the static check: " + "; ".join(report.reasons)
        self.folder.mkdir(parents=True, exist_ok=True)
        folder = self.folder / str(sum(1 for _ in self.folder.iterdir()))
        status, reason = smoke_run(program, self.features_path, folder, self.limits)
        return None if status == Status.OK else f"{status}: {reason}"


def smoke_run(
    program: CandidateProgram, features_path: str | Path, folder: Path, limits: SandboxLimits
) -> tuple[Status, str]:
    """Build, forward and backward ``program`` once in the sandbox; ``(status, reason)``, the
    reason ending with the last lines of the traceback when it failed."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / PROGRAM_FILE).write_text(program.full_source())
    pairs = load_manifest(features_path).splits["train"].pairs
    np.save(folder / TRAIN_LABELS_FILE, np.arange(pairs, dtype=np.int64) % len(LABELS))
    job = TrainJob(
        features_path=str(features_path),
        num_classes=len(LABELS),
        train={"max_epochs": 1},
        smoke=True,
        threads=1,
        audit_hook=limits.audit_hook,
    )
    (folder / JOB_FILE).write_text(job.model_dump_json())
    limits = limits.model_copy(update={"timeout_s": min(limits.timeout_s, SMOKE_TIMEOUT_S), "threads": 1})
    run = run_sandboxed(WORKER_MODULE, folder, limits, read_only=[Path(features_path)], outputs=[RESULT_FILE])
    result = read_result(run, folder, limits, WorkerResult)
    if isinstance(result, WorkerResult):
        return Status.OK, ""
    status, reason = result
    where = program_frames(run.stderr_tail)
    return Status(status), reason + ("\n" + where if where else "")


def program_frames(stderr: str, limit: int = 4) -> str:
    """The traceback's frames in the program itself (file line and code line), last ``limit``:
    what a model needs to find its mistake, without the library's frames."""
    lines = stderr.splitlines()
    frames = [
        f"{lines[n].strip()}\n    {lines[n + 1].strip()}" if n + 1 < len(lines) else lines[n].strip()
        for n, line in enumerate(lines)
        if f'File "{PROGRAM_FILE}"' in line
    ]
    return "\n".join(frames[-limit:])
