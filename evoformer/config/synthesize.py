"""Synthetic examples: what to import or generate and how to gate it; :class:`SynthesizeParams`
is the parameter model of flow ``synthesize``, :class:`SynthesisSettings` its part shared with the
pipeline's step."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from evoformer.config.data import PrepareDataParams
from evoformer.config.llm import LLMConfig
from evoformer.fields import factory_field
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

    paths: list[str] = Field(default_factory=list, description="Files or folders (*.json, *.jsonl, recursively).")
    label: str | None = Field(default=None, description="Label for every imported row (overrides the file's).")
    label_from_filename: bool = Field(default=True, description="Rows without a label take it from the file name.")
    generator: str | None = Field(default=None, description="Generator model name; empty: the file's folder name.")


class GenerationConfig(BaseModel):
    """How many examples to ask for, and how."""

    per_label: int = Field(default=0, ge=0, description="Examples to request per label; 0: no generation.")
    labels: list[str] = factory_field(lambda: list(LABELS), description="Target labels.")
    examples_per_request: int = Field(default=5, ge=1, le=50)
    few_shot: int = Field(default=3, ge=0, le=20, description="Train examples of the target label shown per prompt.")
    topics: list[str] = factory_field(
        lambda: list(DEFAULT_TOPICS), min_length=1, description="Cycled across requests for diversity."
    )
    temperature: float = Field(default=0.9, ge=0, le=2)
    seed: int = Field(default=0, description="Seeds few-shot draws; sent to the server and part of the cache key.")
    llm: LLMConfig = Field(default_factory=LLMConfig)


class BalanceConfig(BaseModel):
    """How many synthetic examples of each label to keep (excess is dropped at random, seeded)."""

    mode: Literal["none", "fill_minority", "equal", "match_train"] = Field(
        default="fill_minority",
        description="none: keep all; fill_minority: no label's train + synthetic count may exceed train's largest "
        "label; equal: as many of each label present as of the rarest present; match_train: train's label shares.",
    )
    max_fraction_of_train: float | None = Field(
        default=None, gt=0, description="Cap on synthetic examples as a fraction of real train pairs (e.g. 0.42)."
    )
    seed: int = 0


class GateConfig(BaseModel):
    """Thresholds and switches of the quality gates."""

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
    balance: BalanceConfig = Field(default_factory=BalanceConfig)


class SynthesisSettings(BaseModel):
    """What to import or generate, and how to gate it (`synthesize` and the pipeline's step)."""

    imports: ImportConfig = Field(
        default_factory=ImportConfig,
        description="Files to import; empty and no generation: the shared synthetic-seed folder.",
    )
    generation: GenerationConfig = Field(
        default_factory=GenerationConfig, description="LLM generation (per_label 0: none)."
    )
    gates: GateConfig = Field(default_factory=GateConfig)


class SynthesizeParams(SynthesisSettings):
    """Everything `synthesize` needs; rendered as a form in the Prefect UI."""

    data: PrepareDataParams = Field(default_factory=PrepareDataParams, description="The real data and its splits.")
