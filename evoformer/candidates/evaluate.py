"""Orchestrator side of candidate training: check, sandbox, early stopping, honest metrics.

The sandbox gets the program, the features and the *train* labels. Val labels stay here: the
worker sends val predictions each epoch and this side decides best epoch and stop. Test labels
stay here too. Every metric is computed here from predictions; nothing the program reports
about its own quality is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from evoformer.candidates.job import (
    FOLD_FILE,
    JOB_FILE,
    METRICS_FILE,
    PROGRAM_FILE,
    RESULT_FILE,
    TRAIN_LABELS_FILE,
    WEIGHTS_FILE,
    Status,
    TrainConfig,
    TrainJob,
    WorkerResult,
)
from evoformer.candidates.program import CandidateProgram
from evoformer.candidates.static_check import StaticCheckConfig, check_source
from evoformer.data.folds import Fold
from evoformer.labels import LABELS
from evoformer.metrics import ClassificationMetrics, classification_metrics
from evoformer.progress import Progress, Throttle, say
from evoformer.sandbox.limits import SandboxLimits
from evoformer.sandbox.result import WorkerOutcome
from evoformer.sandbox.runner import SandboxRun, run_sandboxed

WORKER_MODULE = "evoformer.candidates.worker"
ResultT = TypeVar("ResultT", bound=WorkerOutcome)


class CandidateMetrics(BaseModel):
    params: int = Field(description="Numbers stored in the weights file (parameters and buffers).")
    val: ClassificationMetrics
    test: ClassificationMetrics
    latency_ms: dict[str, float]
    train_seconds: float
    wall_seconds: float = Field(description="Orchestrator's wall clock for the whole sandboxed run.")
    timings_s: dict[str, float] = Field(default_factory=dict)
    epochs: int
    best_epoch: int


class CandidateResult(BaseModel):
    """Outcome of one candidate: a status, a reason, the stderr tail, and metrics when ok."""

    name: str
    program_hash: str
    status: Status
    reason: str = ""
    stderr_tail: str = ""
    isolation: str = ""
    folder: str = ""
    metrics: CandidateMetrics | None = None

    @property
    def transient(self) -> bool:
        return self.status in Status.TRANSIENT


class EarlyStopping:
    """Scores the val predictions the worker sends, keeps the best epoch, and says when to stop."""

    def __init__(self, y_val: np.ndarray, patience: int, max_epochs: int) -> None:
        self.y_val, self.patience, self.max_epochs = y_val, patience, max_epochs
        self.best_f1, self.best_epoch = -1.0, -1
        self.best_pred: np.ndarray | None = None
        self.history: list[float] = []
        self.stopped = False

    def __call__(self, message: dict) -> dict:
        # At most one answer per epoch, none after 'stop': the answers cannot serve as a val oracle.
        if self.stopped or len(self.history) >= self.max_epochs:
            raise ValueError("more epoch reports than the training config allows")
        pred = parse_predictions(message.get("val_pred"), len(self.y_val), "val")
        f1 = classification_metrics(self.y_val, pred).macro_f1
        self.history.append(f1)
        epoch = len(self.history) - 1
        best = f1 > self.best_f1
        if best:
            self.best_f1, self.best_epoch, self.best_pred = f1, epoch, pred
        self.stopped = epoch - self.best_epoch >= self.patience or len(self.history) >= self.max_epochs
        return {"best": best, "stop": self.stopped}


class EpochProgress:
    """The sandbox's ``on_message`` hook: ``stopper`` answers each epoch, then ``progress`` hears of
    it, as ``"<desc>epoch 3/12: val macro-F1 0.410 (best 0.430 at epoch 2), 45 s"`` (epochs counted
    from 1, seconds since this object was made), every ~10% of ``max_epochs`` or 30 s, whichever
    is rarer, and always at the stop. The answers are the stopper's, unchanged."""

    def __init__(
        self, stopper: EarlyStopping, progress: Progress, desc: str = "", clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.stopper, self.progress, self.desc = stopper, progress, desc
        self.throttle = Throttle(stopper.max_epochs, clock=clock)

    def __call__(self, message: dict) -> dict:
        reply = self.stopper(message)
        s = self.stopper
        epochs = len(s.history)
        if self.throttle.due(epochs) or s.stopped:
            line = (
                f"{self.desc}epoch {epochs}/{s.max_epochs}: val macro-F1 {s.history[-1]:.3f} "
                f"(best {s.best_f1:.3f} at epoch {s.best_epoch + 1}), {self.throttle.elapsed():.0f} s"
                + (", stopping" if s.stopped else "")
            )
            try:
                self.progress(line)
            except Exception:  # noqa: BLE001 - the runner would count a raising hook as the sandbox's protocol error
                pass
        return reply


def training_key(
    program: CandidateProgram,
    features_path: str | Path,
    train: TrainConfig,
    limits: SandboxLimits,
    fold: Fold | None = None,
) -> str:
    """What a training outcome depends on: program (AST hash), data (the feature folder's name is
    its key, a fold's rows their digest), train config and sandbox limits (a timeout under a short
    limit says nothing of a long one). The run's own split adds nothing, so its keys are those
    trainings had before cross-validation."""
    parts = [program.program_hash(), Path(features_path).name, train.model_dump_json(), limits.model_dump_json()]
    if fold is not None and fold.digest():
        parts.append(fold.digest())
    payload = "|".join(parts)
    return "candidate:" + hashlib.sha256(payload.encode()).hexdigest()[:32]


def evaluate_candidate(
    program: CandidateProgram,
    features_path: str | Path,
    labels: dict[str, np.ndarray],
    folder: str | Path,
    train: TrainConfig | None = None,
    limits: SandboxLimits | None = None,
    static: StaticCheckConfig | None = None,
    static_check: bool = True,
    fold: Fold | None = None,
    progress: Progress | None = None,
) -> CandidateResult:
    """Check, then train and evaluate ``program`` in the sandbox; write ``metrics.json`` beside it.

    ``labels`` are the run's ``{train, val, test}`` label ids. With a cross-validation ``fold`` the
    sandbox trains on the fold's training rows of train + val and gets only their labels; the
    metrics' ``val`` is then the fold's held-out rows. ``static_check=False`` exists only to test
    that the sandbox holds on its own. ``progress``, if given, gets a start line (epochs, sizes,
    limits), the epochs as the sandbox reports them (:class:`EpochProgress`) and an end line with
    the outcome and the time; it changes nothing else.
    """
    train, limits = train or TrainConfig(), limits or SandboxLimits()
    folder = Path(folder).resolve()
    base = {"name": program.name, "program_hash": program.program_hash(), "folder": str(folder)}
    source = program.full_source()
    report = check_source(source, static)
    _prepare_folder(folder, source)
    if static_check and not report.ok:
        say(progress, f"{program.name}: rejected by the static check: {'; '.join(report.reasons)[:300]}")
        return _finish(folder, CandidateResult(**base, status="rejected", reason="; ".join(report.reasons)))

    sets = fold.index_sets if fold is not None else None
    if fold is not None and sets is not None:
        labels = fold.labels(labels)
        np.savez(folder / FOLD_FILE, train_index=sets[0], val_index=sets[1])
    np.save(folder / TRAIN_LABELS_FILE, np.asarray(labels["train"], dtype=np.int64))
    job = TrainJob(
        features_path=str(features_path),
        num_classes=len(LABELS),
        train=train,
        fold=sets is not None,
        threads=limits.threads,
        audit_hook=limits.audit_hook,
    )
    (folder / JOB_FILE).write_text(job.model_dump_json())
    stopper = EarlyStopping(np.asarray(labels["val"]), train.patience, train.max_epochs)
    hook: Callable[[dict], dict] = stopper
    if progress is not None:
        progress(
            f"{program.name}: training up to {train.max_epochs} epochs (patience {train.patience}, budget "
            f"{train.time_budget_s:.0f} s) on {len(labels['train'])} pairs, val {len(labels['val'])}; "
            f"sandbox limit {limits.timeout_s:.0f} s"
        )
        hook = EpochProgress(stopper, progress, f"{program.name}: ")
    run = run_sandboxed(
        WORKER_MODULE,
        folder,
        limits,
        on_message=hook,
        read_only=[Path(features_path)],
        outputs=[RESULT_FILE, WEIGHTS_FILE],
    )
    result = _classify(run, folder, limits, stopper, labels, base)
    say(progress, _outcome_line(result, run.wall_s))
    return _finish(folder, result)


def _outcome_line(result: CandidateResult, wall_s: float) -> str:
    """The end line of a training: status, the kept epoch's val macro-F1 (epochs from 1), seconds."""
    if result.metrics is None:
        return f"{result.name}: {result.status}: {result.reason[:300]}, {wall_s:.0f} s"
    m = result.metrics
    return (
        f"{result.name}: ok, val macro-F1 {m.val.macro_f1:.3f} (epoch {m.best_epoch + 1} of {m.epochs}), "
        f"{m.params} params, {wall_s:.0f} s"
    )


def _prepare_folder(folder: Path, source: str) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / PROGRAM_FILE).write_text(source)


def _finish(folder: Path, result: CandidateResult) -> CandidateResult:
    """Write the verdict without following anything the sandbox may have planted there."""
    path = folder / METRICS_FILE
    if path.is_symlink() or path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(result.model_dump_json(indent=2))
    return result


def read_result(
    run: SandboxRun, folder: Path, limits: SandboxLimits, model: type[ResultT]
) -> ResultT | tuple[str, str]:
    """The validated ``result.json`` of a finished sandbox run whose status is ok, or else
    ``(status, reason)``: disk quota, timeout, protocol abuse, killed, no or oversized or malformed result."""
    if run.disk_quota:
        return "killed", run.disk_quota
    if run.timed_out:
        return "timeout", f"wall-clock limit of {limits.timeout_s:.0f} s reached; process group killed"
    if run.protocol_error:
        return "invalid_output", run.protocol_error
    path = folder / RESULT_FILE
    if not path.is_file() or path.is_symlink():
        if run.returncode is not None and (run.returncode < 0 or run.returncode > 128):
            sig = -run.returncode if run.returncode < 0 else run.returncode - 128
            return "killed", f"killed by signal {sig} (memory or external kill)"
        return "runtime_error", f"no result written (exit status {run.returncode})"
    if path.stat().st_size > limits.max_result_bytes:
        return "invalid_output", "result.json is larger than allowed"
    try:
        result = model.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        return "invalid_output", f"malformed result.json: {str(exc)[:300]}"
    return result if result.status == "ok" else (result.status, result.reason)


def _classify(
    run: SandboxRun, folder: Path, limits: SandboxLimits, stopper: EarlyStopping, labels, base
) -> CandidateResult:
    common = dict(base, stderr_tail=run.stderr_tail[-4000:], isolation=run.isolation)
    worker = read_result(run, folder, limits, WorkerResult)
    if isinstance(worker, tuple):
        return CandidateResult(**common, status=worker[0], reason=worker[1])
    try:
        val_pred = parse_predictions(worker.val_pred, len(labels["val"]), "val")
        test_pred = parse_predictions(worker.test_pred, len(labels["test"]), "test")
        if stopper.best_pred is None or not np.array_equal(val_pred, stopper.best_pred):
            raise ValueError("val predictions differ from those of the best epoch seen during training")
        params = weights_size(folder / WEIGHTS_FILE)
        latency = {key: float(worker.latency_ms[key]) for key in ("batch1", "batch64")}
        if not all(np.isfinite(v) and v > 0 for v in latency.values()):
            raise ValueError("latency must be positive and finite")
    except (ValueError, OSError, KeyError) as exc:
        return CandidateResult(**common, status="invalid_output", reason=str(exc))
    metrics = CandidateMetrics(
        params=params,
        val=classification_metrics(labels["val"], val_pred),
        test=classification_metrics(labels["test"], test_pred),
        latency_ms=latency,
        train_seconds=worker.train_seconds,
        wall_seconds=run.wall_s,
        timings_s=worker.timings_s,
        epochs=worker.epochs,
        best_epoch=stopper.best_epoch,
    )
    return CandidateResult(**common, status="ok", metrics=metrics)


def parse_predictions(values: object, expected: int, split: str) -> np.ndarray:
    if not isinstance(values, list) or len(values) != expected:
        raise ValueError(f"{split} predictions: expected a list of {expected} labels")
    pred = np.asarray(values)
    if pred.dtype.kind not in "iu" or pred.min(initial=0) < 0 or pred.max(initial=0) >= len(LABELS):
        raise ValueError(f"{split} predictions must be integers in 0..{len(LABELS) - 1}")
    return pred.astype(np.int64)


def weights_size(path: Path) -> int:
    """Count the numbers in a safetensors file from its header (nothing is deserialised)."""
    if not path.is_file() or path.is_symlink():
        raise OSError("no weights file was written")
    with path.open("rb") as handle:
        header_len = int.from_bytes(handle.read(8), "little")
        if header_len > 50_000_000:
            raise ValueError("weights header too large")
        try:
            header = json.loads(handle.read(header_len))
            return int(
                sum(int(np.prod([int(d) for d in v["shape"]])) for k, v in header.items() if k != "__metadata__")
            )
        except Exception as exc:  # noqa: BLE001 - any malformed header is the candidate's fault
            raise ValueError(f"malformed weights file: {type(exc).__name__}") from exc
