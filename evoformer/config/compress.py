"""Which trained candidates to compress and how: :class:`CompressParams` (flow ``compress``), and
:class:`CompressTrigger`, how ``evolve`` hands its final Pareto front to ``compress``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from evoformer.compression.config import CompressConfig
from evoformer.fields import factory_field
from evoformer.runs import StorageConfig
from evoformer.sandbox.limits import SandboxLimits


def compress_limits() -> SandboxLimits:
    """The sandbox of one compression: 30 minutes (fine-tuning several variants and timing them)."""
    return SandboxLimits(timeout_s=1800.0)


class CompressParams(BaseModel):
    """Which models of which run to compress, and how; rendered as a form in the Prefect UI."""

    run_id: str = Field(
        description="The run whose trained candidates are compressed (a folder under storage.runs_dir)."
    )
    candidates: list[str] = Field(default_factory=list, description="Candidate ids (e.g. g03-c05); empty: the top_k.")
    top_k: int = Field(default=1, ge=1, description="Without candidate ids: the k best by val macro-F1.")
    config: CompressConfig = factory_field(CompressConfig)
    limits: SandboxLimits = factory_field(compress_limits)
    storage: StorageConfig = Field(default_factory=StorageConfig)


class CompressTrigger(BaseModel):
    """How `evolve` hands its final Pareto front to `compress` when it ends."""

    mode: Literal["off", "subflow", "deployment"] = Field(
        default="off", description="off; subflow (runs here, waits); deployment (run_deployment, returns at once)."
    )
    deployment: str = Field(default="compress/compress", description="'flow/deployment' name for mode=deployment.")
    config: CompressConfig = factory_field(CompressConfig)
