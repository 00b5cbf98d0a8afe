"""A candidate's fitness: trainings on every cross-validation fold, after the cascade's screening.

Per generation (:meth:`FitnessEvaluator.evaluate`):

1. **Screening** (the cascade's stage 1, children only): each child trains on fold 0 with a
   short budget (``cascade.budget_fraction`` of the time and epochs) in ``screening/<id>/``.
2. **Promotion**: a screened child goes on when it is in the generation's top
   ``cascade.top_fraction`` by stage-1 score, or when no member of the current front that is as
   small or smaller beat it in stage 1 by more than ``cascade.margin``. The front's stage-1
   scores are those of their own screening (seeds are screened too, and always go on).
3. **Full evaluation**: every fold at the full budget. Fold 0 trains in ``candidates/<id>/``:
   its model is the one the candidate keeps (compression and deployment use it, and its test
   score is the one shown). Its training never saw test, nor the rows of fold 0 it is scored on.

Fitness is the mean of the folds' val macro-F1, with the standard error of that mean
(``std(ddof=1) / sqrt(K)``; none with one fold). A child the cascade stopped has stage
``screened`` and no fitness, so it is never ranked against fully evaluated ones.

All trainings of a stage go to the queue at once, so ``max_parallel`` of them run side by side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from evoformer.candidates.evaluate import CandidateResult
from evoformer.candidates.job import Status, TrainConfig
from evoformer.config.fitness import CascadeConfig, FitnessConfig
from evoformer.data.folds import Fold
from evoformer.evolution.population import Individual, pareto_front
from evoformer.evolution.training_queue import TrainingJob, TrainingQueue, TrainingRequest


def screening_config(train: TrainConfig, cascade: CascadeConfig) -> TrainConfig:
    """Stage 1's training: ``budget_fraction`` of the time budget and of the epochs (at least one)."""
    return train.model_copy(
        update={
            "time_budget_s": train.time_budget_s * cascade.budget_fraction,
            "max_epochs": max(1, math.ceil(train.max_epochs * cascade.budget_fraction)),
        }
    )


def fitness_of(fold_f1: list[float]) -> tuple[float, float | None]:
    """Mean and standard error of the folds' scores (no SE from a single fold)."""
    mean = float(np.mean(fold_f1))
    se = float(np.std(fold_f1, ddof=1) / math.sqrt(len(fold_f1))) if len(fold_f1) > 1 else None
    return mean, se


def record_folds(individual: Individual, results: list[CandidateResult], screen_f1: float | None) -> Individual:
    """``individual`` after its full evaluation: fitness from every fold, the kept model's (fold
    0's) size, test score and folder. Any fold that did not end ok makes the candidate fail with
    that fold's status and reason."""
    kept = results[0]
    update: dict[str, Any] = {"folder": kept.folder, "screen_f1": screen_f1, "status": Status.OK, "reason": ""}
    ok = [r.metrics for r in results if r.status == Status.OK and r.metrics is not None]
    update["fold_f1"] = [round(m.val.macro_f1, 6) for m in ok]
    failed = next((n for n, r in enumerate(results) if r.status != Status.OK or r.metrics is None), None)
    if failed is not None:
        where = f"fold {failed}: " if len(results) > 1 else ""
        update |= {"status": results[failed].status, "reason": where + results[failed].reason, "stage": ""}
        return individual.model_copy(update=update)
    mean, se = fitness_of([m.val.macro_f1 for m in ok])
    m = ok[0]
    update |= {
        "stage": "full",
        "params": m.params,
        "val_macro_f1": mean,
        "fitness_se": se,
        "val_accuracy": float(np.mean([f.val.accuracy for f in ok])),
        "test_macro_f1": m.test.macro_f1,
        "test_accuracy": m.test.accuracy,
        "train_seconds": round(sum(f.train_seconds for f in ok), 3),
        "wall_seconds": round(sum(f.wall_seconds for f in ok), 3),
    }
    return individual.model_copy(update=update)


def record_screening(individual: Individual, result: CandidateResult) -> Individual:
    """``individual`` stopped after stage 1: its outcome, stage-1 score and size, no fitness."""
    update: dict[str, Any] = {"status": result.status, "reason": result.reason, "folder": "", "stage": ""}
    if result.status == Status.OK and result.metrics is not None:
        update |= {
            "stage": "screened",
            "screen_f1": result.metrics.val.macro_f1,
            "params": result.metrics.params,
            "train_seconds": result.metrics.train_seconds,
            "wall_seconds": result.metrics.wall_seconds,
            "reason": "stopped by the cascade after stage 1",
        }
    return individual.model_copy(update=update)


def promising(screened: list[Individual], reference: list[Individual], cascade: CascadeConfig) -> set[str]:
    """Ids of the screened children that go on (see the module docstring). ``screened`` hold
    ``screen_f1`` and ``params`` from stage 1; ``reference`` is the fully evaluated population."""
    scored = sorted((i for i in screened if i.screen_f1 is not None), key=lambda i: (-(i.screen_f1 or 0.0), i.id))
    top = math.ceil(cascade.top_fraction * len(scored)) if scored else 0
    chosen = {i.id for i in scored[:top]}
    front = [r for r in pareto_front(reference) if r.screen_f1 is not None]
    for child in scored:
        rivals = [r for r in front if r.size <= (child.params or 0)]
        if all((r.screen_f1 or 0.0) <= (child.screen_f1 or 0.0) + cascade.margin for r in rivals):
            chosen.add(child.id)
    return chosen


@dataclass
class FitnessEvaluator:
    """Evaluates new candidates on ``folds`` through ``queue``, with the cascade of ``config``.
    ``refresh``: train every time, never reusing a finished training (a retrain)."""

    queue: TrainingQueue[Any]
    folds: list[Fold]
    config: FitnessConfig
    refresh: bool = False

    def evaluate(
        self, jobs: list[TrainingJob], reference: list[Individual], always_promote: bool = False
    ) -> list[Individual]:
        """Every job's record after evaluation, in the order of ``jobs``. ``reference``: the
        population so far (the front the cascade compares with); ``always_promote``: screen but
        never stop (the seeds, whose stage-1 scores become the reference)."""
        cascade = self.config.cascade
        screen: dict[str, float | None] = {}
        survivors = jobs
        done: dict[str, Individual] = {}
        if cascade.enabled:
            train = screening_config(self.queue.setup.train, cascade)
            requests = [self._request(job, 0, train, screening=True) for job in jobs]
            screened = [record_screening(j.individual, r) for j, r in zip(jobs, self.queue.run(requests), strict=True)]
            ok = [i for i in screened if i.stage == "screened"]
            go_on = {i.id for i in ok} if always_promote else promising(ok, reference, cascade)
            for individual in screened:
                screen[individual.id] = individual.screen_f1
                if individual.id not in go_on:
                    done[individual.id] = individual
            survivors = [j for j in jobs if j.id in go_on]
        requests = [self._request(job, fold.number) for job in survivors for fold in self.folds]
        results = iter(self.queue.run(requests))
        for job in survivors:
            folds = [next(results) for _ in self.folds]
            done[job.id] = record_folds(job.individual, folds, screen.get(job.id))
        return [done[job.id] for job in jobs]

    def _request(
        self, job: TrainingJob, fold: int, train: TrainConfig | None = None, screening: bool = False
    ) -> TrainingRequest:
        layout = self.queue.setup.layout
        if screening:
            folder, label = layout.screening(job.id), f"{job.id}-screen"
        else:
            folder = layout.fold_training(job.id, fold)
            label = f"{job.id}-fold{fold}" if len(self.folds) > 1 else job.id
        return self.queue.setup.request(
            job.program, folder, label, train, self.folds[fold], candidate=job.id, refresh=self.refresh
        )
