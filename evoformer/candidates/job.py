"""What the orchestrator hands to the sandbox, and what it accepts back."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Status = Literal["ok", "rejected", "build_error", "runtime_error", "timeout", "killed", "invalid_output"]
PROGRAM_FILE = "program.py"
JOB_FILE = "job.json"
TRAIN_LABELS_FILE = "train_labels.npy"
RESULT_FILE = "result.json"
WEIGHTS_FILE = "weights.safetensors"
METRICS_FILE = "metrics.json"


class TrainConfig(BaseModel):
    """How a candidate is trained: AdamW, class-weighted cross-entropy, early stopping on val macro-F1."""

    max_epochs: int = Field(default=12, ge=1)
    time_budget_s: float = Field(
        default=240.0, gt=0, description="Training budget: no epoch starts past it, and a running epoch stops at it."
    )
    batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    patience: int = Field(default=3, ge=1, description="Epochs without a better val macro-F1 before stopping.")
    grad_clip: float = Field(default=1.0, gt=0)
    seed: int = 0
    max_train_pairs: int | None = Field(default=None, ge=1, description="Subsample train (smoke runs).")
    latency_repeats: int = Field(default=20, ge=3)


class TrainJob(BaseModel):
    """The job file in the candidate's folder. It names features, never labels other than train."""

    features_path: str
    num_classes: int
    train: TrainConfig
    threads: int = 2
    audit_hook: bool = True


class WorkerResult(BaseModel):
    """``result.json`` as written by the sandbox. Untrusted: validated, and metrics are recomputed."""

    status: Status
    reason: str = ""
    val_pred: list[int] = Field(default_factory=list)
    test_pred: list[int] = Field(default_factory=list)
    epochs: int = 0
    best_epoch: int = -1
    train_seconds: float = 0.0
    latency_ms: dict[str, float] = Field(default_factory=dict)
    timings_s: dict[str, float] = Field(default_factory=dict, description="setup, train, evaluate, save (worker clock).")
