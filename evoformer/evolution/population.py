"""The population: one record per candidate, fitness, Pareto fronts, parent pool and retirement."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from evoformer.candidates.job import Status
from evoformer.fields import form_schema

Fitness = Literal["pareto", "evoprompting"]
ParentSource = Literal["fittest", "random_seeds"]


class Individual(BaseModel):
    """One candidate with its lineage and outcome (``lineage.json`` holds a list of these)."""

    id: str
    generation: int = Field(description="0 for seeds.")
    parents: list[str] = Field(default_factory=list)
    operator: str = Field(description="seed, llm-mutation, llm-crossover, ast-mutation or ast-crossover.")
    temperature: float | None = None
    prompt_hash: str | None = None
    description: str = ""
    repairs: int = Field(default=0, description="LLM repair rounds spent on this child before it was checked.")
    proposal_seconds: float | None = Field(default=None, description="Wall clock of writing the child (LLM calls).")
    program_hash: str = ""
    status: Status = Field(description="A training status (ok, rejected, ...), or duplicate / proposal_failed.")
    reason: str = ""
    copy_of: str = Field(default="", description="A duplicate: the id of the candidate whose program it repeats.")
    params: int | None = None
    val_macro_f1: float | None = Field(
        default=None, description="Fitness: the mean val macro-F1 over the candidate's folds (one fold: the val split)."
    )
    fitness_se: float | None = Field(
        default=None, description="Standard error of that mean over folds (None with one fold)."
    )
    fold_f1: list[float] = Field(default_factory=list, description="Val macro-F1 of each fold trained, in fold order.")
    stage: Literal["", "screened", "full"] = Field(
        default="",
        description="How far the cascade took it: screened (one fold, short budget; never ranked against "
        "fully evaluated ones) or full (every fold, full budget). Empty: not trained.",
    )
    screen_f1: float | None = Field(
        default=None, description="Val macro-F1 of the cascade's short first-stage training."
    )
    test_macro_f1: float | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    folder: str = ""
    train_seconds: float | None = Field(default=None, description="Training inside the sandbox (worker clock).")
    wall_seconds: float | None = Field(
        default=None, description="Orchestrator clock from submitting the training to its result."
    )
    retired: bool = False

    @property
    def trained(self) -> bool:
        """Fully evaluated: trained ok on every fold (a child the cascade stopped is not)."""
        return (
            self.status == Status.OK
            and self.params is not None
            and self.val_macro_f1 is not None
            and self.stage != "screened"
        )

    @property
    def f1(self) -> float:
        """The quality objective (fitness: mean val macro-F1 over folds); only trained candidates have one."""
        if self.val_macro_f1 is None:
            raise ValueError(f"{self.id} has no val macro-F1: it is not trained")
        return self.val_macro_f1

    @property
    def size(self) -> int:
        """The size objective (parameter count); only trained candidates have one."""
        if self.params is None:
            raise ValueError(f"{self.id} has no parameter count: it is not trained")
        return self.params


class SelectionConfig(BaseModel):
    """How parents are chosen."""

    model_config = ConfigDict(json_schema_extra=form_schema())

    fitness: Fitness = Field(
        default="pareto",
        title="Fitness ordering",
        description="pareto: non-dominated sorting with crowding over (fitness up, params down); "
        "evoprompting: -(params x val error).",
    )
    error_threshold: float = Field(
        default=0.70,
        title="Parent error threshold",
        gt=0,
        le=1,
        description="Candidates whose fitness error (1 - mean val macro-F1 over folds) is at or above this "
        "never become parents.",
    )
    parents: ParentSource = Field(
        default="fittest",
        title="Parent source",
        description="fittest: parents are drawn from the best top_p candidates (evolution); random_seeds: from "
        "the trained seeds, uniformly, whatever any child scored (random search, a baseline for evolution).",
    )
    top_p: int = Field(
        default=10, ge=1, title="Parent pool (top p)", description="Parents are drawn from the best p candidates."
    )
    parents_k: int = Field(default=2, ge=1, title="Parents per crossover", description="Parents per crossover prompt.")
    crossover_rate: float = Field(
        default=0.5, ge=0, le=1, title="Crossover share", description="Share of children made by crossover."
    )
    noise_se: float = Field(
        default=1.0,
        title="Dominance margin (standard errors)",
        ge=0,
        description="A candidate dominates another of its size only when its fitness is higher by more than "
        "this many standard errors of the difference (0: plain Pareto dominance).",
    )


def combined_se(a: Individual, b: Individual) -> float:
    """Standard error of ``a.f1 - b.f1`` from the two fitness SEs (0 when neither has one)."""
    return math.hypot(a.fitness_se or 0.0, b.fitness_se or 0.0)


def dominates(a: Individual, b: Individual, noise_se: float = 0.0) -> bool:
    """``a`` is no worse on both objectives and better on one.

    With ``noise_se`` > 0 a gain in quality counts only when it exceeds ``noise_se`` standard
    errors of the difference: ``a`` dominates when it is no larger and clearly better, or smaller
    and no worse. So a child replaces a parent of its size only by more than the noise."""
    if a.size <= b.size and a.f1 - b.f1 > noise_se * combined_se(a, b):
        return True
    return a.size < b.size and a.f1 >= b.f1


def non_dominated_fronts(individuals: list[Individual], noise_se: float = 0.0) -> list[list[Individual]]:
    """NSGA-II fronts: front 0 is the Pareto front, each later one is the front once earlier ones are removed."""
    remaining = sorted(individuals, key=lambda i: i.id)
    fronts: list[list[Individual]] = []
    while remaining:
        front = [a for a in remaining if not any(dominates(b, a, noise_se) for b in remaining if b is not a)]
        fronts.append(front)
        ids = {i.id for i in front}
        remaining = [i for i in remaining if i.id not in ids]
    return fronts


def crowding_distance(front: list[Individual]) -> dict[str, float]:
    """NSGA-II crowding distance per id; the extremes of each objective get infinity."""
    distance = {i.id: 0.0 for i in front}
    for objective in (lambda i: i.f1, lambda i: float(i.size)):
        ordered = sorted(front, key=lambda i: (objective(i), i.id))
        low, high = objective(ordered[0]), objective(ordered[-1])
        distance[ordered[0].id] = distance[ordered[-1].id] = float("inf")
        if high == low:
            continue
        for prev, cur, nxt in zip(ordered, ordered[1:], ordered[2:], strict=False):
            distance[cur.id] += (objective(nxt) - objective(prev)) / (high - low)
    return distance


def evoprompting_fitness(individual: Individual) -> float:
    """EvoPrompting's fitness: -(params x val error); higher is better."""
    return -(individual.size * (1.0 - individual.f1))


def eligible(individuals: list[Individual], config: SelectionConfig) -> list[Individual]:
    """Trained candidates under the error threshold."""
    return [i for i in individuals if i.trained and 1.0 - i.f1 < config.error_threshold]


def rank(individuals: list[Individual], config: SelectionConfig) -> list[Individual]:
    """Eligible candidates, best first, by the configured fitness (ties broken by id)."""
    pool = eligible(individuals, config)
    if config.fitness == "evoprompting":
        return sorted(pool, key=lambda i: (-evoprompting_fitness(i), i.id))
    ranked: list[Individual] = []
    for front in non_dominated_fronts(pool, config.noise_se):
        crowd = crowding_distance(front)
        ranked += sorted(front, key=lambda i: (-crowd[i.id], -i.f1, i.id))
    return ranked


def parent_pool(individuals: list[Individual], config: SelectionConfig) -> tuple[list[Individual], str]:
    """The top p candidates that are not retired, and a note when the pool had to be widened.

    Parents are retired once used, as in EvoPrompting. When every eligible candidate is retired
    (say, a generation whose children all failed), retired ones are readmitted; when none is
    under the error threshold at all, the best trained ones are used. Either way the run goes on
    and the note says why. With ``parents="random_seeds"`` the pool is every trained seed.
    """
    if config.parents == "random_seeds":
        seeds = sorted((i for i in individuals if i.trained and i.generation == 0), key=lambda i: i.id)
        return seeds, ""
    active = rank([i for i in individuals if not i.retired], config)
    if active:
        return active[: config.top_p], ""
    retired = rank(individuals, config)
    if retired:
        return retired[: config.top_p], "every eligible parent was retired; drawing from retired ones"
    trained = sorted((i for i in individuals if i.trained), key=lambda i: (-i.f1, i.size, i.id))
    note = f"no candidate is under the error threshold {config.error_threshold}; drawing from the best trained ones"
    return trained[: config.top_p], note


def pareto_front(individuals: list[Individual], noise_se: float = 0.0) -> list[Individual]:
    """Trained (fully evaluated) candidates no other one dominates, smallest first; ``noise_se``
    as in :func:`dominates` (0: the plain front of fitness means, as plotted)."""
    trained = [i for i in individuals if i.trained]
    if not trained:
        return []
    return sorted(non_dominated_fronts(trained, noise_se)[0], key=lambda i: (i.size, -i.f1))


def best(individuals: list[Individual]) -> Individual | None:
    """Highest val macro-F1 (then fewer params)."""
    trained = [i for i in individuals if i.trained]
    return min(trained, key=lambda i: (-i.f1, i.size, i.id)) if trained else None


def retire(individuals: list[Individual], ids: set[str]) -> None:
    """Mark the given parents as used."""
    for individual in individuals:
        if individual.id in ids:
            individual.retired = True
