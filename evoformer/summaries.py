"""What the data, evolve and compress flows report: the shapes of their sections of
``summary.json`` and of what they return (``--json`` on the command line).

Flows return ``summary.as_dict()``: plain JSON-ready dicts, so the CLI formatters read them as
before, but every such dict is produced by one of these models.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from evoformer.data import LoadReport
from evoformer.metrics import ClassificationMetrics


class Summary(BaseModel):
    """A flow's summary. Fields named in ``OMIT_WHEN_NONE`` are left out of :meth:`as_dict` while
    unset (say, the report path before the report is written)."""

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ()

    def as_dict(self) -> dict[str, Any]:
        out = self.model_dump(mode="json")
        for key in self.OMIT_WHEN_NONE:
            if out.get(key) is None:
                out.pop(key, None)
        return out


# ---- data --------------------------------------------------------------------------------------


class SplitCounts(BaseModel):
    pairs: int
    claims: int
    labels: dict[str, int] = Field(description="Pairs per label.")


class AugmentedInfo(BaseModel):
    """The augmented training set that replaced train."""

    path: str
    version: str
    synthetic_pairs: int
    synthetic_labels: dict[str, int]


class BaselineSummary(BaseModel):
    val: ClassificationMetrics
    test: ClassificationMetrics
    detail: str


class DataSummary(Summary):
    """The data flow's summary: the top level of ``summary.json``."""

    run_id: str
    run_dir: str
    source: LoadReport
    splits: dict[str, SplitCounts]
    claim_overlap: int
    fingerprints: dict[str, str]
    split_config: dict[str, Any]
    encoder: dict[str, Any]
    augmented: AugmentedInfo | None = None
    features_path: str
    features_cached: bool
    sentences_path: str = Field(description="Empty when no baseline uses sentence embeddings.")
    sentences_cached: bool
    baselines: dict[str, BaselineSummary]


# ---- evolve ------------------------------------------------------------------------------------


class CandidateCounts(BaseModel):
    total: int
    ok: int
    rejected: int = Field(description="Not trained: rejected by the static check, duplicates, no program.")
    failed: int = Field(description="Trained and not ok.")
    by_status: dict[str, int]


class CandidateFitness(BaseModel):
    """A candidate's fitness: the mean val macro-F1 over the folds it trained on, and its SE."""

    mean: float | None = None
    se: float | None = Field(default=None, description="Standard error over folds; None with one fold.")
    folds_done: int = 0
    stage: str = Field(default="", description="screened (stopped by the cascade), full, or empty (not trained).")


class CandidateBrief(BaseModel):
    id: str
    status: str = ""
    params: int | None = None
    val_macro_f1: float | None = Field(default=None, description="The fitness mean (one fold: val macro-F1).")
    test_macro_f1: float | None = Field(default=None, description="Test macro-F1 of the model the candidate keeps.")
    generation: int
    fitness: CandidateFitness = Field(default_factory=CandidateFitness)


class FitnessSummary(BaseModel):
    """How fitness was measured in the run."""

    kind: str = Field(description="cv: folds of train + val; split: the single train / val split.")
    folds: int
    noise_se: float = Field(description="Standard errors a fitness gain must exceed to dominate.")
    cascade: bool
    screened_out: int = Field(default=0, description="Children the cascade stopped after stage 1.")
    fully_evaluated: int = 0


class LLMUsageSummary(BaseModel):
    requests: int = 0
    retries: int = 0
    tokens: int = 0
    cost: float = 0.0
    cache_hits: int = 0
    failures: int = 0
    children: int = Field(default=0, description="Children the LLM was asked for (one request each, repairs aside).")
    valid_children: int = Field(default=0, description="Of those, children that trained ok and are no copy.")
    valid_rate: float | None = Field(default=None, description="valid_children / children.")
    repairs: float | None = Field(default=None, description="Repair rounds per valid child.")
    tokens_per_valid_child: float | None = None
    seconds_per_valid_child: float | None = Field(
        default=None,
        description="Time spent writing the children (LLM calls, smoke checks), summed over children (they "
        "overlap when several requests are in flight), per valid child.",
    )


class EvolveSummary(Summary):
    """The evolve flow's summary (section ``evolve`` of ``summary.json``, which has neither the
    report path nor the hand-over to compress)."""

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("report", "compress")

    operator: str
    operator_reason: str
    generations: int
    stopped: str = ""
    candidates: CandidateCounts
    fitness: FitnessSummary | None = None
    best: CandidateBrief | None = None
    best_seed: CandidateBrief | None = None
    best_evolved: CandidateBrief | None = None
    front: list[CandidateBrief] = Field(default_factory=list)
    leaderboard: list[CandidateBrief] = Field(
        default_factory=list, description="Every candidate, in the order of the leaderboard artifact."
    )
    seed_front: list[CandidateBrief] = Field(default_factory=list)
    evolved_beats_best_seed: bool = Field(
        default=False, description="The best evolved candidate's fitness is higher than the best seed's."
    )
    evolved_beats_best_seed_on_test: bool | None = Field(
        default=None,
        description="Measured, never used to choose: the same two candidates' test macro-F1 (None without both).",
    )
    seed_front_dominated: int = Field(
        default=0, description="Seeds on the seed front that an evolved candidate dominates."
    )
    llm: LLMUsageSummary = Field(default_factory=LLMUsageSummary)
    run_id: str
    run_dir: str
    flow_run_id: str | None = None
    lineage: str
    pareto_plot: str
    baselines: dict[str, dict[str, float]] = Field(default_factory=dict, description="Macro-F1 per baseline and split.")
    report: str | None = None
    compress: dict[str, Any] | None = Field(
        default=None, description="The compress flow's summary, or its deployment run."
    )

    def section(self) -> dict[str, Any]:
        """What ``summary.json`` keeps under ``evolve``."""
        return self.model_dump(mode="json", exclude={"report", "compress"})


# ---- compress ----------------------------------------------------------------------------------


class CompressedCandidate(BaseModel):
    """One compressed candidate: every variant, and the comparison table."""

    candidate: str
    status: str
    reason: str = ""
    folder: str
    best: str | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    variants: list[dict[str, Any]] = Field(default_factory=list)
    table: list[dict[str, Any]] = Field(default_factory=list)


class CompressSummary(Summary):
    """The compress flow's summary (section ``compress`` of ``summary.json``, without the report path)."""

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("report",)

    run_id: str
    run_dir: str
    candidates: list[CompressedCandidate]
    baselines: dict[str, dict[str, float]] = Field(default_factory=dict, description="Macro-F1 per baseline and split.")
    report: str | None = None

    def section(self) -> dict[str, Any]:
        """What ``summary.json`` keeps under ``compress``."""
        return self.model_dump(mode="json", exclude={"report"})
