"""The whole pipeline in one model: :class:`PipelineParams`, the parameter model of flow ``pipeline``."""

from __future__ import annotations

from pydantic import BaseModel, Field

from evoformer.compression.config import CompressConfig
from evoformer.config.compress import compress_limits
from evoformer.config.evolve import EvolveParams
from evoformer.config.synthesize import SynthesisSettings
from evoformer.fields import factory_field
from evoformer.sandbox.limits import SandboxLimits


class SynthesisStep(SynthesisSettings):
    """The optional synthetic-data step; its output replaces train for `evolve`."""

    enabled: bool = Field(default=False, description="Run `synthesize` and evolve on the augmented training set.")


class CompressionStep(BaseModel):
    """Which candidates the last step compresses, and how."""

    top_k: int = Field(default=1, ge=0, description="Compress the k best candidates by val macro-F1 (0: skip).")
    config: CompressConfig = Field(default_factory=CompressConfig)
    limits: SandboxLimits = factory_field(compress_limits)


class PipelineParams(BaseModel):
    """The whole pipeline in one form: data, budgets and operator live in `evolve`."""

    evolve: EvolveParams = Field(
        default_factory=EvolveParams,
        description="Data, operator, budgets, runner; its data also feeds the other steps.",
    )
    synthesis: SynthesisStep = Field(default_factory=SynthesisStep)
    compression: CompressionStep = Field(default_factory=CompressionStep)
