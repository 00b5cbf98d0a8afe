"""Prefect tasks of one training: ``candidate_training`` (what the dashboard shows) around
``train_candidate`` (the sandboxed training, cached by program, data and config).

``train_candidate`` completes for every lasting outcome, failures included, so Prefect's result
cache (which keeps only Completed results) makes each finished training reusable: by a resumed
run, and by another run of the same program on the same data. Only transient failures are
retried: a sandbox killed by a signal or the memory cap, or a sandbox that could not start.

``candidate_training`` calls it as a nested task and ends in a Failed state named after the
status (``TimedOut``, ``BuildError``...) whenever the training did not end ok, so failures are
visible in the dashboard; the state's data is the :class:`CandidateResult` (see ``result_of``).
It caches nothing itself: replaying a cached failure fails it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, as_completed
from prefect.states import Failed, State
from prefect.task_runners import TaskRunner

from evoformer.candidates.evaluate import CandidateResult, evaluate_candidate, training_key
from evoformer.candidates.job import Status, TrainConfig
from evoformer.candidates.program import CandidateProgram
from evoformer.data.folds import Fold
from evoformer.evolution.retrain import RetrainTarget, retrain_hint
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
    result = evaluate_candidate(
        program, features_path, labels, folder, train, limits, fold=fold, progress=get_run_logger().info
    )
    if result.transient:
        raise TransientCandidateFailure(result)
    return result


FAILED_STATE_NAMES: dict[Status, str] = {
    Status.REJECTED: "Rejected",
    Status.BUILD_ERROR: "BuildError",
    Status.RUNTIME_ERROR: "RuntimeError",
    Status.TIMEOUT: "TimedOut",
    Status.KILLED: "Killed",
    Status.INVALID_OUTPUT: "InvalidOutput",
    Status.SANDBOX_ERROR: "SandboxError",
}
"""The name of a failed training's task run state, by the status it ended in."""


def failed_state(result: CandidateResult, hint: str = "") -> State:
    """A Failed state named after ``result.status``, with status and reason as its message and
    ``result`` as its data."""
    message = f"{result.status}: {result.reason}"[:1500]
    name = FAILED_STATE_NAMES.get(result.status, "Failed")
    return Failed(name=name, message=message + (f" | {hint}" if hint else ""), data=result)


@task(name="candidate-training", task_run_name="train-{program.name}", cache_policy=NO_CACHE)
def candidate_training(
    program: CandidateProgram,
    features_path: str,
    labels: dict[str, np.ndarray],
    folder: str,
    train: TrainConfig,
    limits: SandboxLimits,
    fold: Fold | None = None,
    refresh: bool = False,
    label: str = "",
    retrain: RetrainTarget | None = None,
) -> CandidateResult | State:
    """Run ``train_candidate`` (``refresh``: bypassing its cache) and return its result when ok;
    otherwise a Failed state (see ``failed_state``) and a warning that says how to retrain it
    (``retrain``: the run and candidate the training belongs to). Raises only when the sandbox
    could not start, after the retries."""
    options: dict[str, Any] = {"task_run_name": f"sandbox-{label or program.name}"}
    if refresh:
        options["refresh_cache"] = True
    try:
        result = train_candidate.with_options(**options)(program, features_path, labels, folder, train, limits, fold)
    except TransientCandidateFailure as exc:  # still transient after the retries
        result = exc.result
    if result.status == Status.OK:
        return result
    hint = retrain_hint(retrain, result, train, limits) if retrain else ""
    get_run_logger().warning(
        "%s: %s: %s%s", label or program.name, result.status, result.reason[:500], f"\n{hint}" if hint else ""
    )
    return failed_state(result, hint)


def result_of(state: Any) -> CandidateResult:
    """The candidate's result from a training's final state: also from a Failed one (its data, or
    the transient failure it raised); re-raises any other exception."""
    if not state.is_failed():
        return state.result()
    data = state.result(raise_on_failure=False)
    if isinstance(data, CandidateResult):
        return data
    if isinstance(data, TransientCandidateFailure):
        return data.result
    if isinstance(data, BaseException):
        raise data
    return state.result()


class PrefectTrainer:
    """The evolution's :class:`~evoformer.evolution.training_queue.Trainer` on Prefect: each
    training is a ``candidate_training`` task on ``runner`` (a started task runner)."""

    def __init__(self, runner: TaskRunner) -> None:
        self.runner = runner

    def submit(self, request: TrainingRequest) -> PrefectFuture:
        task_ = candidate_training.with_options(task_run_name=f"train-{request.label}")
        setup = request.setup
        parameters = {
            "program": request.program,
            "features_path": setup.features_path,
            "labels": setup.labels,
            "folder": str(request.folder),
            "train": request.train,
            "limits": setup.limits,
            "fold": request.fold,
            "refresh": request.refresh,
            "label": request.label,
            "retrain": RetrainTarget.of(setup.layout, request.candidate) if request.candidate else None,
        }
        return self.runner.submit(task_, parameters)

    def next_done(self, running: Sequence[PrefectFuture]) -> PrefectFuture:
        future = next(as_completed(list(running)))
        future.wait()  # sets the final state from the finished worker, not a stale API read
        return future

    def result(self, handle: PrefectFuture) -> CandidateResult:
        return result_of(handle.state)
