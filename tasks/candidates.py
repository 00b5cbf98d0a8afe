"""Prefect task ``train_candidate``: sandboxed training, cached by program, data and config.

Only transient failures are retried: a sandbox killed by a signal or the memory cap, or a
sandbox that could not start. Deterministic outcomes (rejected, build/runtime errors, timeouts,
invalid output) complete normally with their status and are never retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from prefect import task
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import TaskRunner

from evoformer.candidates.evaluate import CandidateResult, evaluate_candidate, training_key
from evoformer.candidates.job import TrainConfig
from evoformer.candidates.program import CandidateProgram
from evoformer.data.folds import Fold
from evoformer.sandbox.limits import SandboxLimits
from evoformer.sandbox.runner import SandboxError

if TYPE_CHECKING:
    from evoformer.evolution.training_queue import TrainingRequest

TRAINING_TAG = "evoformer-training"


class TransientCandidateFailure(RuntimeError):
    """The candidate was killed (signal or memory); worth another try. Carries the result."""

    def __init__(self, result: CandidateResult) -> None:
        super().__init__(f"{result.name}: {result.status}: {result.reason}")
        self.result = result


def is_transient_failure(exc: BaseException | None) -> bool:
    return isinstance(exc, (TransientCandidateFailure, SandboxError))


def retry_only_on(*transient: type[BaseException]):
    """A ``retry_condition_fn`` that retries a task run only if it raised one of ``transient``."""

    def condition(_task: Any, _task_run: Any, state: Any) -> bool:
        try:
            state.result()
        except transient:
            return True
        except Exception:  # noqa: BLE001 - anything else is deterministic: never retried
            return False
        return False

    return condition


def candidate_cache_key(_context: Any, parameters: dict[str, Any]) -> str:
    """Prefect cache key: see ``training_key``."""
    return training_key(
        parameters["program"],
        parameters["features_path"],
        parameters["train"],
        parameters["limits"],
        parameters.get("fold"),
    )


@task(
    name="train-candidate",
    task_run_name="train-{program.name}",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_only_on(TransientCandidateFailure, SandboxError),
    cache_key_fn=candidate_cache_key,
    persist_result=True,
    tags=[TRAINING_TAG],
)
def train_candidate(
    program: CandidateProgram,
    features_path: str,
    labels: dict[str, np.ndarray],
    folder: str,
    train: TrainConfig,
    limits: SandboxLimits,
    fold: Fold | None = None,
) -> CandidateResult:
    """Train and evaluate one program in the sandbox (on ``fold`` of train + val, if given);
    raise only on transient failures."""
    result = evaluate_candidate(program, features_path, labels, folder, train, limits, fold=fold)
    if result.transient:
        raise TransientCandidateFailure(result)
    return result


def result_of(state: Any) -> CandidateResult:
    """The candidate's result, also when the task failed for good with a transient failure."""
    try:
        return state.result()
    except TransientCandidateFailure as exc:
        return exc.result


class PrefectTrainer:
    """The evolution's :class:`~evoformer.evolution.training_queue.Trainer` on Prefect: each
    training is a ``train_candidate`` task on ``runner`` (a started task runner)."""

    def __init__(self, runner: TaskRunner) -> None:
        self.runner = runner

    def submit(self, request: TrainingRequest) -> PrefectFuture:
        options: dict[str, Any] = {"task_run_name": f"train-{request.label}"}
        if request.refresh:
            options["refresh_cache"] = True
        task_ = train_candidate.with_options(**options)
        setup = request.setup
        parameters = {
            "program": request.program,
            "features_path": setup.features_path,
            "labels": setup.labels,
            "folder": str(request.folder),
            "train": request.train,
            "limits": setup.limits,
            "fold": request.fold,
        }
        return self.runner.submit(task_, parameters)

    def next_done(self, running: Sequence[PrefectFuture]) -> PrefectFuture:
        future = next(as_completed(list(running)))
        future.wait()  # sets the final state from the finished worker, not a stale API read
        return future

    def result(self, handle: PrefectFuture) -> CandidateResult:
        return result_of(handle.state)
