"""Synthetic examples: what to import or generate and how to gate it; :class:`SynthesizeParams`
is the parameter model of flow ``synthesize``, :class:`SynthesisSettings` its part shared with the
pipeline's step."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from evoformer.config.data import PrepareDataParams
from evoformer.config.llm import LLMConfig
from evoformer.fields import factory_field, form_schema
from evoformer.labels import LABELS

DEFAULT_TOPICS = [
    "sea level rise",
    "Arctic sea ice and the ice sheets",
    "glaciers",
    "global temperature records",
    "carbon dioxide and other greenhouse gases",
    "ocean warming and acidification",
    "extreme weather and droughts",
    "climate models and projections",
    "fossil fuels, renewables and emissions",
    "the scientific consensus and the IPCC",
    "the sun, volcanoes and natural cycles",
    "forests, agriculture and ecosystems",
    "polar bears, coral reefs and wildlife",
]


class ImportConfig(BaseModel):
    """Which files to read and how to label them."""

    model_config = ConfigDict(json_schema_extra=form_schema())

    paths: list[str] = Field(default_factory=list, description="Files or folders (*.json, *.jsonl, recursively).")
    label: str | None = Field(
        default=None, title="Label for every row", description="Label for every imported row (overrides the file's)."
    )
    label_from_filename: bool = Field(
        default=True, title="Label from file name", description="Rows without a label take it from the file name."
    )
    generator: str | None = Field(
        default=None, title="Generator name", description="Generator model name; empty: the file's folder name."
    )


class GenerationConfig(BaseModel):
    """How many examples to ask for, and how."""

    model_config = ConfigDict(json_schema_extra=form_schema())

    per_label: int = Field(
        default=0, ge=0, title="Examples per label", description="Examples to request per label; 0: no generation."
    )
    labels: list[str] = factory_field(lambda: list(LABELS), title="Target labels", description="Target labels.")
    examples_per_request: int = Field(
        default=5, ge=1, le=50, title="Examples per request", description="Examples one LLM request asks for."
    )
    few_shot: int = Field(
        default=3,
        ge=0,
        le=20,
        title="Few-shot examples",
        description="Train examples of the target label shown per prompt.",
    )
    topics: list[str] = factory_field(
        lambda: list(DEFAULT_TOPICS), min_length=1, description="Cycled across requests for diversity."
    )
    temperature: float = Field(
        default=0.9, ge=0, le=2, title="Generation temperature", description="Sampling temperature of each request."
    )
    seed: int = Field(
        default=0,
        title="Generation seed",
        description="Seeds few-shot draws; sent to the server and part of the cache key.",
    )
    llm: LLMConfig = Field(
        default_factory=LLMConfig,
        title="Generator LLM",
        description="The OpenAI-compatible endpoint that writes the examples, its retries, concurrency and "
        "spending caps.",
    )


class BalanceConfig(BaseModel):
    """How many synthetic examples of each label to keep (excess is dropped at random, seeded)."""

    model_config = ConfigDict(json_schema_extra=form_schema())

    mode: Literal["none", "fill_minority", "equal", "match_train"] = Field(
        default="fill_minority",
        title="Balance mode",
        description="none: keep all; fill_minority: no label's train + synthetic count may exceed train's largest "
        "label; equal: as many of each label present as of the rarest present; match_train: train's label shares.",
    )
    max_fraction_of_train: float | None = Field(
        default=None,
        gt=0,
        title="Max share of train",
        description="Cap on synthetic examples as a fraction of real train pairs (e.g. 0.42).",
    )
    seed: int = Field(default=0, title="Balance seed", description="Seeds which excess examples are dropped.")


class GateConfig(BaseModel):
    """Thresholds and switches of the quality gates."""

    model_config = ConfigDict(json_schema_extra=form_schema())

    near_duplicate_threshold: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description=(
            "Two pairs are near duplicates when both their claims and their evidences have at least this cosine."
        ),
    )
    decontamination_threshold: float = Field(
        default=0.85,
        gt=0,
        le=1,
        description=(
            "Drop an example whose claim or evidence has at least this cosine with any val/test claim or evidence."
        ),
    )
    verify: Literal["none", "classifier", "llm"] = Field(
        default="classifier",
        description="Label verification: a classifier trained on real train data, or an LLM judge.",
    )
    verify_action: Literal["report", "filter"] = Field(
        default="report",
        description="report: agreement statistics only; filter: also drop examples the verifier disagrees with.",
    )
    balance: BalanceConfig = Field(
        default_factory=BalanceConfig,
        title="Label balance",
        description="How many synthetic examples of each label to keep (excess is dropped at random, seeded).",
    )


class SynthesisSettings(BaseModel):
    """What to import or generate, and how to gate it (synthesize and the pipeline's step)."""

    model_config = ConfigDict(json_schema_extra=form_schema())

    imports: ImportConfig = Field(
        default_factory=ImportConfig,
        title="Imports",
        description="Files to import; empty and no generation: the shared synthetic-seed folder.",
    )
    generation: GenerationConfig = Field(
        default_factory=GenerationConfig, title="Generation", description="LLM generation (per_label 0: none)."
    )
    gates: GateConfig = Field(
        default_factory=GateConfig,
        title="Quality gates",
        description="Near-duplicate and decontamination thresholds, label verification and balance.",
    )


class SynthesizeParams(SynthesisSettings):
    """Everything synthesize needs; rendered as a form in the Prefect UI."""

    data: PrepareDataParams = Field(
        default_factory=PrepareDataParams, title="Data", description="The real data and its splits."
    )
