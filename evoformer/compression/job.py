"""What the orchestrator hands to the compression sandbox, and what it accepts back."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from evoformer.compression.config import CompressConfig
from evoformer.sandbox.result import WorkerOutcome

VariantStatus = Literal["ok", "failed", "not_applicable"]
VARIANTS_DIR = "variants"
REFERENCE = "fp32"


class CompressJob(BaseModel):
    """``job.json`` of a compression folder: features, settings; labels other than train never."""

    features_path: str
    num_classes: int
    config: CompressConfig
    fold: bool = Field(
        default=False,
        description="Fine-tune and validate on the rows of train + val that FOLD_FILE names: the fold the "
        "candidate's model was trained on (its held-out rows stay unseen).",
    )
    audit_hook: bool = True


class VariantOutput(BaseModel):
    """One variant as reported by the sandbox. Untrusted: predictions are scored outside, the file
    size is read from disk outside, and the parameter counts are checked where the file allows."""

    name: str
    technique: str
    status: VariantStatus = "ok"
    reason: str = ""
    file: str = Field(default="", description="Path of the variant's file, relative to the folder.")
    val_pred: list[int] = Field(default_factory=list)
    test_pred: list[int] = Field(default_factory=list)
    params_total: int = 0
    params_nonzero: int = 0
    latency_ms: dict[str, float] = Field(default_factory=dict)
    finetune_epochs: int = 0
    seconds: float = 0.0


class CompressWorkerResult(WorkerOutcome):
    """``result.json`` of a compression run."""

    status: Literal["ok", "build_error", "runtime_error", "invalid_output", "killed"]
    reason: str = ""
    variants: list[VariantOutput] = Field(default_factory=list)
    environment: dict[str, str] = Field(default_factory=dict, description="Library versions and threads used.")
