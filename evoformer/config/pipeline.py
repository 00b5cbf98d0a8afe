"""The whole pipeline in one model: :class:`PipelineParams`, the parameter model of flow ``pipeline``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from evoformer.compression.config import CompressConfig
from evoformer.config.compress import compress_limits
from evoformer.config.evolve import EvolveParams
from evoformer.config.synthesize import SynthesisSettings
from evoformer.fields import factory_field, form_schema
from evoformer.sandbox.limits import SandboxLimits


class SynthesisStep(SynthesisSettings):
    """The optional synthetic-data step; its output replaces train for evolve."""

    model_config = ConfigDict(json_schema_extra=form_schema("enabled"))

    enabled: bool = Field(
        default=False, title="Run synthesis", description="Run synthesize and evolve on the augmented training set."
    )


class CompressionStep(BaseModel):
    """Which candidates the last step compresses, and how."""

    model_config = ConfigDict(json_schema_extra=form_schema())

    top_k: int = Field(
        default=1,
        ge=0,
        title="Best k candidates",
        description="Compress the k best candidates by val macro-F1 (0: skip).",
    )
    config: CompressConfig = Field(
        default_factory=CompressConfig,
        title="Compression",
        description="The variants made from each candidate (pruning, int8 quantization), their fine-tuning "
        "and how they are measured.",
    )
    limits: SandboxLimits = factory_field(
        compress_limits,
        title="Compression sandbox limits",
        description="Sandbox limits of each compression (default 30 minutes).",
    )


class PipelineParams(BaseModel):
    """The whole pipeline in one form: data, budgets and operator live in evolve."""

    model_config = ConfigDict(json_schema_extra=form_schema())

    evolve: EvolveParams = Field(
        default_factory=EvolveParams,
        title="Evolution",
        description="Data, operator, budgets, runner; its data also feeds the other steps.",
    )
    synthesis: SynthesisStep = Field(
        default_factory=SynthesisStep,
        title="Synthetic data (optional)",
        description="Import or generate synthetic training examples, gate them, and evolve on the augmented set.",
    )
    compression: CompressionStep = Field(
        default_factory=CompressionStep,
        title="Compression step",
        description="Which of the final candidates are compressed (pruning, int8 quantization), and how.",
    )
