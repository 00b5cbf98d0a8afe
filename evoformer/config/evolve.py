"""The operator that writes children, and :class:`EvolveParams`, the parameter model of flow ``evolve``.

The evolve form starts with what users change most (generations, children, operator, the training
budget, trainings at once, data): ``form_schema`` orders the form, not the fields, so dumps and the
keys made from them keep their order."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from evoformer.candidates.job import TrainConfig
from evoformer.candidates.static_check import StaticCheckConfig
from evoformer.config.compress import CompressTrigger
from evoformer.config.data import PrepareDataParams
from evoformer.config.fitness import FitnessConfig
from evoformer.config.llm import LLMConfig
from evoformer.config.runners import RunnerConfig
from evoformer.evolution.population import SelectionConfig
from evoformer.fields import factory_field, form_schema
from evoformer.sandbox.limits import SandboxLimits

OperatorKind = Literal["auto", "llm", "offline"]


class OperatorConfig(BaseModel):
    """Which operator writes children, and how."""

    model_config = ConfigDict(json_schema_extra=form_schema("kind", "edit_mode", "repair_rounds"))

    kind: OperatorKind = Field(
        default="auto",
        title="Operator kind",
        description="auto: the LLM when an endpoint is configured, else offline.",
    )
    temperatures: list[float] = factory_field(
        lambda: [0.2, 0.6, 0.8, 1.0],
        min_length=1,
        title="LLM temperatures",
        description="Each LLM request draws one.",
    )
    feedback_failures: int = Field(
        default=2, ge=0, description="Recent failed children of a parent shown in its prompt."
    )
    max_edits: int = Field(
        default=2, ge=1, title="Offline AST edits", description="Offline operator: AST edits per mutation."
    )
    edit_mode: Literal["full", "diff"] = Field(
        default="full",
        title="LLM edit mode",
        description="LLM mutations: full, the whole program rewritten; diff, SEARCH/REPLACE blocks against the "
        "parent (a reply with a whole program instead is used as one). Crossovers are always rewritten in full.",
    )
    repair_rounds: int = Field(
        default=2,
        ge=0,
        title="LLM repair rounds",
        description="LLM operator: follow-up requests that show the model why its program failed a check (or why "
        "no program was found in its reply) and ask for the whole corrected program.",
    )
    named_changes: bool = Field(
        default=False,
        title="LLM named changes",
        description="LLM mutations: ask each sibling for a different named change (width, depth, pooling, ...) "
        "instead of letting the model choose one. Off by default: with Qwen2.5-Coder-1.5B it gave 2 valid "
        "children of 12 against 4 of 12 without (benchmarks/llm_operator.py, docs/llm-server.md).",
    )
    llm: LLMConfig = Field(
        default_factory=LLMConfig,
        title="Operator LLM",
        description="The OpenAI-compatible endpoint the LLM operator calls, its retries, concurrency and "
        "spending caps.",
    )


class EvolveParams(BaseModel):
    """Everything evolve needs; rendered as a form in the Prefect UI."""

    model_config = ConfigDict(
        json_schema_extra=form_schema(
            "generations", "children", "operator", "train", "max_parallel", "data", "search_budget_s", "limits"
        )
    )

    generations: int = Field(default=3, ge=0, description="Generations after the seeds.")
    children: int = Field(
        default=6, ge=1, title="Children per generation", description="Children proposed per generation."
    )
    search_budget_s: float | None = Field(
        default=None,
        gt=0,
        title="Search time budget (s)",
        description="Wall-clock seconds for the generations after the seeds: no generation starts past it "
        "(a resumed run gets it afresh). Empty: no limit.",
    )
    seed: int = Field(
        default=0,
        title="Search seed",
        description="Seeds parent draws and operator choices (training has its own, train.seed).",
    )
    operator: OperatorConfig = Field(
        default_factory=OperatorConfig,
        title="Operator",
        description="What writes the children: an LLM, the offline AST operator, or auto (the LLM when configured).",
    )
    selection: SelectionConfig = Field(
        default_factory=SelectionConfig,
        title="Parent selection",
        description="How parents are chosen: the fitness ordering, who may become a parent, crossover share.",
    )
    evaluation: FitnessConfig = Field(
        default_factory=FitnessConfig,
        title="Fitness evaluation",
        description="Cross-validation folds over train + val, and the cascade.",
    )
    seed_folder: str | None = Field(
        default=None,
        title="Seed programs folder",
        description="Folder of seed programs (*.py); empty: the built-in library.",
    )
    prelude_path: str | None = Field(
        default=None, title="Prelude file", description="Static helper code prepended to every program."
    )
    data: PrepareDataParams = Field(
        default_factory=PrepareDataParams,
        title="Data",
        description="Where the claim/evidence pairs come from, how they are split, encoded and baselined, "
        "and where runs are stored.",
    )
    train: TrainConfig = factory_field(
        lambda: TrainConfig(time_budget_s=120.0),
        title="Training",
        description="Per-candidate training (default budget 120 s).",
    )
    limits: SandboxLimits = factory_field(
        lambda: SandboxLimits(threads=1),
        title="Sandbox limits",
        description="Sandbox limits of each training (default one thread: several small trainings side by side "
        "use the cores better than one with many threads).",
    )
    static: StaticCheckConfig = Field(
        default_factory=StaticCheckConfig,
        title="Static check",
        description="What a candidate program may contain before it is trained (imports, size).",
    )
    max_parallel: int | None = Field(
        default=None,
        ge=1,
        title="Trainings at once",
        description="Trainings at once; empty: the cores this process may use divided by the threads per sandbox "
        "(limits.threads).",
    )
    runner: RunnerConfig = Field(
        default_factory=RunnerConfig,
        title="Task runner",
        description="Task runner of candidate training (thread, process, dask, ray).",
    )
    compress: CompressTrigger = Field(
        default_factory=CompressTrigger,
        title="Compression at the end",
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
