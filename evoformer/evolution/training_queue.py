"""Running trainings: reuse what is already trained, run the rest at most ``max_parallel`` at
once, and keep every run folder self-contained. What to train (folds, the cascade's stages) is
:mod:`evoformer.evolution.fitness`'s business; this module runs a list of requests.

The queue knows nothing of the orchestrator: a :class:`Trainer` starts one training and says
when one is done (the flows' Prefect adapter submits the ``train_candidate`` task; a test can
train nothing at all). Per training, in order:

1. Its folder already holds the finished training under the same key (a killed run resumed):
   its ``metrics.json`` is reused and nothing is submitted.
2. Otherwise the training is submitted. Its result may come from a cache (Prefect's) and have
   been trained in another run's folder: those files are copied into this run's folder.
3. When that other folder no longer holds this very training (deleted, or trained again under
   another key), the training is submitted once more with ``refresh=True`` (bypass the cache).

A request made with ``refresh=True`` (a retrain) skips step 1 and the cache: it always trains.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import numpy as np

from evoformer.candidates.evaluate import CandidateResult, training_key
from evoformer.candidates.job import METRICS_FILE, Status, TrainConfig
from evoformer.candidates.program import CandidateProgram
from evoformer.data.folds import Fold
from evoformer.evolution.population import Individual
from evoformer.evolution.state import finished_training, mark_trained
from evoformer.layout import RunLayout
from evoformer.sandbox.limits import SandboxLimits

Handle = TypeVar("Handle", bound=Hashable)


@dataclass
class TrainingJob:
    """A checked, new candidate to evaluate (its record says ``pending``)."""

    individual: Individual
    program: CandidateProgram

    @property
    def id(self) -> str:
        return self.individual.id


@dataclass(frozen=True, eq=False)
class TrainingSetup:
    """What every training of a run shares: where it lives, its data, and how it trains."""

    layout: RunLayout
    features_path: str
    labels: dict[str, np.ndarray] = field(repr=False)
    train: TrainConfig
    limits: SandboxLimits

    def request(
        self,
        program: CandidateProgram,
        folder: Path,
        label: str,
        train: TrainConfig | None = None,
        fold: Fold | None = None,
        candidate: str = "",
        refresh: bool = False,
    ) -> TrainingRequest:
        """One training of ``program`` into ``folder`` (on ``fold``, with ``train`` or the run's
        config) for the candidate ``candidate``; ``refresh``: train even if a finished one exists."""
        train = train or self.train
        key = training_key(program, self.features_path, train, self.limits, fold)
        return TrainingRequest(
            program=program,
            folder=folder,
            key=key,
            setup=self,
            label=label,
            train=train,
            fold=fold,
            candidate=candidate,
            refresh=refresh,
        )


@dataclass(frozen=True)
class TrainingRequest:
    """One training to run: ``program`` into ``folder``. ``refresh``: never answer from a cache.
    ``label`` names it in logs and task runs (``g01-c02``, ``g01-c02-fold1``, ``g01-c02-screen``);
    ``candidate`` is the id of the candidate it evaluates (empty outside an evolution run)."""

    program: CandidateProgram
    folder: Path
    key: str
    setup: TrainingSetup = field(repr=False)
    label: str = ""
    train: TrainConfig = field(default_factory=TrainConfig)
    fold: Fold | None = None
    refresh: bool = False
    candidate: str = ""


class Trainer(Protocol[Handle]):
    """Runs trainings somewhere (a task runner, a test's fake)."""

    def submit(self, request: TrainingRequest) -> Handle:
        """Start the training; return a handle to wait on."""

    def next_done(self, running: Sequence[Handle]) -> Handle:
        """Block until one of ``running`` has finished; return it."""

    def result(self, handle: Handle) -> CandidateResult:
        """The finished training's result; raises when the infrastructure failed (after retries)."""


def into_run_folder(result: CandidateResult, folder: Path, key: str) -> CandidateResult | None:
    """A result from a cache may have been trained in another run's folder: copy its files here,
    so every run folder holds its own programs, weights and metrics. ``None`` when that folder no
    longer holds this very training."""
    if not result.folder or Path(result.folder).resolve() == folder.resolve():
        return result
    source = Path(result.folder)
    if finished_training(source, key) is None:
        return None
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(source, folder, symlinks=True)
    moved = result.model_copy(update={"folder": str(folder.resolve())})
    (folder / METRICS_FILE).unlink(missing_ok=True)
    (folder / METRICS_FILE).write_text(moved.model_dump_json(indent=2))
    return moved


class TrainingQueue(Generic[Handle]):
    """Trains jobs on a :class:`Trainer`, at most ``max_parallel`` at once, reusing finished work."""

    def __init__(
        self,
        setup: TrainingSetup,
        trainer: Trainer[Handle],
        max_parallel: int = 1,
        logger: logging.Logger | logging.LoggerAdapter | None = None,
    ) -> None:
        if max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        self.setup, self.trainer, self.max_parallel = setup, trainer, max_parallel
        self.logger = logger or logging.getLogger(__name__)

    def run(self, requests: list[TrainingRequest]) -> list[CandidateResult]:
        """Every request's result, in the order of ``requests``. A failure of the infrastructure
        (after the trainer's retries) is a ``sandbox_error`` result, never an exception."""
        done: dict[int, CandidateResult] = {}
        pending: list[tuple[int, TrainingRequest]] = []
        for n, request in enumerate(requests):
            previous = None if request.refresh else finished_training(request.folder, request.key)
            if previous is not None:
                self.logger.info("%s: reusing the finished training in %s", request.label, request.folder)
                done[n] = previous
            else:
                pending.append((n, request))
        running: dict[Handle, tuple[int, TrainingRequest]] = {}
        while pending or running:
            while pending and len(running) < self.max_parallel:
                n, request = pending.pop(0)
                running[self.trainer.submit(request)] = (n, request)
            handle = self.trainer.next_done(list(running))
            n, request = running.pop(handle)
            try:
                result = self.trainer.result(handle)
            except Exception as exc:  # noqa: BLE001 - an infrastructure failure after retries
                done[n] = _failed(request, str(exc)[:500])
                continue
            moved = into_run_folder(result, request.folder, request.key)
            if moved is None:
                if request.refresh:  # trained afresh and still not here: do not loop
                    done[n] = _failed(request, f"training again gave a result in another folder ({result.folder})")
                    continue
                self.logger.info("%s: the cached training's folder is gone; training again", request.label)
                pending.append((n, replace(request, refresh=True)))
                continue
            if not moved.transient:
                mark_trained(request.folder, request.key)
            done[n] = moved
            self.logger.info("%s: %s %s", request.label, moved.status, moved.reason)
        return [done[n] for n in range(len(requests))]


def _failed(request: TrainingRequest, reason: str) -> CandidateResult:
    return CandidateResult(
        name=request.program.name,
        program_hash=request.program.program_hash(),
        status=Status.SANDBOX_ERROR,
        reason=reason,
        folder=str(request.folder),
    )
