"""Training a generation's candidates: reuse what is already trained, run the rest at most
``max_parallel`` at once, and keep every run folder self-contained.

The queue knows nothing of the orchestrator: a :class:`Trainer` starts one training and says
when one is done (the flows' Prefect adapter submits the ``train_candidate`` task; a test can
train nothing at all). Per candidate, in order:

1. ``candidates/<id>/`` already holds the finished training under the same key (a killed run
   resumed): its ``metrics.json`` is reused and nothing is submitted.
2. Otherwise the training is submitted. Its result may come from a cache (Prefect's) and have
   been trained in another run's folder: those files are copied into this run's folder.
3. When that other folder no longer holds this very training (deleted, or trained again under
   another key), the training is submitted once more with ``refresh=True`` (bypass the cache).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from evoformer.candidates.evaluate import CandidateResult, training_key
from evoformer.candidates.job import METRICS_FILE, Status, TrainConfig
from evoformer.candidates.program import CandidateProgram
from evoformer.evolution.population import Individual
from evoformer.evolution.state import finished_training, mark_trained
from evoformer.layout import RunLayout
from evoformer.sandbox.limits import SandboxLimits

Handle = TypeVar("Handle", bound=Hashable)


@dataclass
class TrainingJob:
    """A checked, new candidate to train (its record says ``pending``)."""

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

    def key(self, program: CandidateProgram) -> str:
        return training_key(program, self.features_path, self.train, self.limits)


@dataclass(frozen=True)
class TrainingRequest:
    """One training to run: ``program`` into ``folder``. ``refresh``: never answer from a cache."""

    program: CandidateProgram
    folder: Path
    key: str
    setup: TrainingSetup = field(repr=False)
    refresh: bool = False


class Trainer(Protocol[Handle]):
    """Runs trainings somewhere (a task runner, a test's fake)."""

    def submit(self, request: TrainingRequest) -> Handle:
        """Start the training; return a handle to wait on."""

    def next_done(self, running: Sequence[Handle]) -> Handle:
        """Block until one of ``running`` has finished; return it."""

    def result(self, handle: Handle) -> CandidateResult:
        """The finished training's result; raises when the infrastructure failed (after retries)."""


def record_result(individual: Individual, result: CandidateResult, wall_seconds: float | None = None) -> Individual:
    """``individual`` with the outcome and metrics of its training."""
    update: dict[str, Any] = {
        "status": result.status,
        "reason": result.reason,
        "folder": result.folder,
        "wall_seconds": wall_seconds,
    }
    if result.metrics:
        m = result.metrics
        update |= {
            "params": m.params,
            "train_seconds": m.train_seconds,
            "val_macro_f1": m.val.macro_f1,
            "test_macro_f1": m.test.macro_f1,
            "val_accuracy": m.val.accuracy,
            "test_accuracy": m.test.accuracy,
        }
    return individual.model_copy(update=update)


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

    def request(self, job: TrainingJob, refresh: bool = False) -> TrainingRequest:
        return TrainingRequest(
            program=job.program,
            folder=self.setup.layout.candidate(job.id),
            key=self.setup.key(job.program),
            setup=self.setup,
            refresh=refresh,
        )

    def train(self, jobs: list[TrainingJob]) -> list[Individual]:
        """Every job's record after training, in the order of ``jobs``."""
        done: dict[str, Individual] = {}
        pending: list[tuple[TrainingJob, TrainingRequest]] = []
        for job in jobs:
            request = self.request(job)
            previous = finished_training(request.folder, request.key)
            if previous is not None:
                self.logger.info("%s: reusing the finished training in %s", job.id, request.folder)
                done[job.id] = record_result(job.individual, previous)
            else:
                pending.append((job, request))
        running: dict[Handle, tuple[TrainingJob, TrainingRequest, float]] = {}
        while pending or running:
            while pending and len(running) < self.max_parallel:
                job, request = pending.pop(0)
                running[self.trainer.submit(request)] = (job, request, time.perf_counter())
            handle = self.trainer.next_done(list(running))
            job, request, started = running.pop(handle)
            try:
                result = self.trainer.result(handle)
            except Exception as exc:  # noqa: BLE001 - an infrastructure failure after retries
                done[job.id] = job.individual.model_copy(
                    update={"status": Status.SANDBOX_ERROR, "reason": str(exc)[:500]}
                )
                continue
            moved = into_run_folder(result, request.folder, request.key)
            if moved is None:
                if request.refresh:  # trained afresh and still not here: do not loop
                    done[job.id] = job.individual.model_copy(
                        update={
                            "status": Status.SANDBOX_ERROR,
                            "reason": f"training again gave a result in another folder ({result.folder})",
                        }
                    )
                    continue
                self.logger.info("%s: the cached training's folder is gone; training again", job.id)
                pending.append((job, self.request(job, refresh=True)))
                continue
            if not moved.transient:
                mark_trained(request.folder, request.key)
            done[job.id] = record_result(job.individual, moved, round(time.perf_counter() - started, 3))
            self.logger.info("%s: %s %s", job.id, moved.status, moved.reason)
        return [done[job.id] for job in jobs]
