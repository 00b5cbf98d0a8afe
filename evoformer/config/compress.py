"""Which trained candidates to compress and how: :class:`CompressParams` (flow ``compress``), and
:class:`CompressTrigger`, how ``evolve`` hands its final Pareto front to ``compress``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from evoformer.compression.config import CompressConfig
from evoformer.fields import factory_field, form_schema
from evoformer.runs import StorageConfig
from evoformer.sandbox.limits import SandboxLimits


def compress_limits() -> SandboxLimits:
    """The sandbox of one compression: 30 minutes (fine-tuning several variants and timing them)."""
    return SandboxLimits(timeout_s=1800.0)


class CompressParams(BaseModel):
    """Which models of which run to compress, and how; rendered as a form in the Prefect UI."""

    model_config = ConfigDict(json_schema_extra=form_schema())

    run_id: str = Field(
        title="Run to compress",
        description="The run whose trained candidates are compressed (a folder under storage.runs_dir).",
    )
    candidates: list[str] = Field(
        default_factory=list, title="Candidate ids", description="Candidate ids (e.g. g03-c05); empty: the top_k."
    )
    top_k: int = Field(
        default=1, ge=1, title="Best k candidates", description="Without candidate ids: the k best by val macro-F1."
    )
    config: CompressConfig = factory_field(
        CompressConfig,
        title="Compression",
        description="The variants made from each candidate (pruning, int8 quantization), their fine-tuning "
        "and how they are measured.",
    )
    limits: SandboxLimits = factory_field(
        compress_limits,
        title="Compression sandbox limits",
        description="Sandbox limits of each compression (default 30 minutes).",
    )
    storage: StorageConfig = Field(
        default_factory=StorageConfig,
        title="Storage",
        description="Where the run folders and the shared cache live.",
    )


class CompressTrigger(BaseModel):
    """How evolve hands its final Pareto front to compress when it ends."""

    model_config = ConfigDict(json_schema_extra=form_schema())

    mode: Literal["off", "subflow", "deployment"] = Field(
        default="off",
        title="Compression mode",
        description="off; subflow (runs here, waits); deployment (run_deployment, returns at once).",
    )
    deployment: str = Field(
        default="compress/compress",
        title="Compress deployment",
        description="'flow/deployment' name for mode=deployment.",
    )
    config: CompressConfig = factory_field(
        CompressConfig,
        title="Compression of the final front",
        description="The variants made from each candidate of the final front, their fine-tuning and measurement.",
    )
