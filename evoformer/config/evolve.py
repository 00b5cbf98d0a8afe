"""The operator that writes children, and :class:`EvolveParams`, the parameter model of flow ``evolve``."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, Field

from evoformer.candidates.job import TrainConfig
from evoformer.candidates.static_check import StaticCheckConfig
from evoformer.config.compress import CompressTrigger
from evoformer.config.data import PrepareDataParams
from evoformer.config.fitness import FitnessConfig
from evoformer.config.llm import LLMConfig
from evoformer.config.runners import RunnerConfig
from evoformer.evolution.population import SelectionConfig
from evoformer.fields import factory_field
from evoformer.sandbox.limits import SandboxLimits

OperatorKind = Literal["auto", "llm", "offline"]


class OperatorConfig(BaseModel):
    """Which operator writes children, and how."""

    kind: OperatorKind = Field(
        default="auto", description="auto: the LLM when an endpoint is configured, else offline."
    )
    temperatures: list[float] = factory_field(
        lambda: [0.2, 0.6, 0.8, 1.0], min_length=1, description="Each LLM request draws one."
    )
    feedback_failures: int = Field(
        default=2, ge=0, description="Recent failed children of a parent shown in its prompt."
    )
    max_edits: int = Field(default=2, ge=1, description="Offline operator: AST edits per mutation.")
    edit_mode: Literal["full", "diff"] = Field(
        default="full",
        description="LLM mutations: full, the whole program rewritten; diff, SEARCH/REPLACE blocks against the "
        "parent (a reply with a whole program instead is used as one). Crossovers are always rewritten in full.",
    )
    repair_rounds: int = Field(
        default=2,
        ge=0,
        description="LLM operator: follow-up requests that show the model why its program failed a check (or why "
        "no program was found in its reply) and ask for the whole corrected program.",
    )
    llm: LLMConfig = Field(default_factory=LLMConfig)


class EvolveParams(BaseModel):
    """Everything `evolve` needs; rendered as a form in the Prefect UI."""

    generations: int = Field(default=3, ge=0, description="Generations after the seeds.")
    children: int = Field(default=6, ge=1, description="Children proposed per generation.")
    search_budget_s: float | None = Field(
        default=None,
        gt=0,
        description="Wall-clock seconds for the generations after the seeds: no generation starts past it "
        "(a resumed run gets it afresh). Empty: no limit.",
    )
    seed: int = Field(default=0, description="Seeds parent draws and operator choices (training has train.seed).")
    operator: OperatorConfig = Field(default_factory=OperatorConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    evaluation: FitnessConfig = Field(
        default_factory=FitnessConfig, description="Cross-validation folds over train + val, and the cascade."
    )
    seed_folder: str | None = Field(
        default=None, description="Folder of seed programs (*.py); empty: the built-in library."
    )
    prelude_path: str | None = Field(default=None, description="Static helper code prepended to every program.")
    data: PrepareDataParams = Field(default_factory=PrepareDataParams)
    train: TrainConfig = factory_field(
        lambda: TrainConfig(time_budget_s=120.0),
        description="Per-candidate training (default budget 120 s).",
    )
    limits: SandboxLimits = factory_field(
        lambda: SandboxLimits(threads=1),
        description="Sandbox limits of each training (default one thread: several small trainings side by side "
        "use the cores better than one with many threads).",
    )
    static: StaticCheckConfig = Field(default_factory=StaticCheckConfig)
    max_parallel: int | None = Field(
        default=None,
        ge=1,
        description="Trainings at once; empty: the cores this process may use divided by limits.threads.",
    )
    runner: RunnerConfig = Field(
        default_factory=RunnerConfig, description="Task runner of candidate training (thread, process, dask, ray)."
    )
    compress: CompressTrigger = Field(
        default_factory=CompressTrigger,
        description="Compress the final Pareto front when the run ends (off by default).",
    )

    def trainings_at_once(self) -> int:
        """``max_parallel``, or every usable core busy: cores // threads per training (at least 1)."""
        if self.max_parallel is not None:
            return self.max_parallel
        return max(1, usable_cores() // self.limits.threads)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
