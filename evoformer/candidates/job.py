"""What the orchestrator hands to the sandbox, and what it accepts back."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evoformer.fields import form_schema
from evoformer.sandbox.result import WorkerOutcome


class Status(StrEnum):
    """What became of a candidate. The values are what saved JSON holds (``metrics.json``,
    ``lineage.json``, ``evolution/state.json``); the named subsets below are the only definitions
    of which statuses count as trained, not trained or failed."""

    # Outcomes of a training (the sandbox's, or the static check's before it)
    OK = "ok"
    REJECTED = "rejected"
    BUILD_ERROR = "build_error"
    RUNTIME_ERROR = "runtime_error"
    TIMEOUT = "timeout"
    KILLED = "killed"
    INVALID_OUTPUT = "invalid_output"
    # What the evolution records for a child that was never trained, or whose training broke
    PENDING = "pending"
    DUPLICATE = "duplicate"
    PROPOSAL_FAILED = "proposal_failed"
    SANDBOX_ERROR = "sandbox_error"

    TRAINING: ClassVar[frozenset[Status]]
    """What a training can end in (a worker's ``result.json``, a ``CandidateResult``)."""
    NOT_TRAINED: ClassVar[frozenset[Status]]
    """Children stopped before training: rejected by the static check, duplicates, no program."""
    FAILED: ClassVar[frozenset[Status]]
    """Candidates that went to training and did not end ok."""
    PROGRAM_FAULTS: ClassVar[frozenset[Status]]
    """Failures the program itself caused (worth showing the LLM); infrastructure failures are not."""
    TRANSIENT: ClassVar[frozenset[Status]]
    """Failures worth another try (killed by a signal or the memory cap)."""


Status.TRAINING = frozenset(
    {
        Status.OK,
        Status.REJECTED,
        Status.BUILD_ERROR,
        Status.RUNTIME_ERROR,
        Status.TIMEOUT,
        Status.KILLED,
        Status.INVALID_OUTPUT,
    }
)
Status.NOT_TRAINED = frozenset({Status.REJECTED, Status.DUPLICATE, Status.PROPOSAL_FAILED})
Status.FAILED = frozenset(Status) - Status.NOT_TRAINED - {Status.OK}
Status.PROGRAM_FAULTS = frozenset(
    {Status.REJECTED, Status.BUILD_ERROR, Status.RUNTIME_ERROR, Status.TIMEOUT, Status.INVALID_OUTPUT}
)
Status.TRANSIENT = frozenset({Status.KILLED})


def training_status(value: Status) -> Status:
    """``value`` if a training can end in it; a ``ValueError`` (a validation error in a model) otherwise."""
    if value not in Status.TRAINING:
        raise ValueError(f"{value!r} is not a training outcome")
    return value


PROGRAM_FILE = "program.py"
JOB_FILE = "job.json"
TRAIN_LABELS_FILE = "train_labels.npy"
FOLD_FILE = "fold.npz"
"""A fold's ``train_index`` and ``val_index`` into the pool (train rows, then val rows)."""
RESULT_FILE = "result.json"
WEIGHTS_FILE = "weights.safetensors"
METRICS_FILE = "metrics.json"


class TrainConfig(BaseModel):
    """How a candidate is trained: AdamW, class-weighted cross-entropy, early stopping on val macro-F1."""

    # The budget first in the form; the field order itself stays, as training_key hashes model_dump_json.
    model_config = ConfigDict(json_schema_extra=form_schema("time_budget_s", "max_epochs", "patience"))

    max_epochs: int = Field(default=12, ge=1, title="Max epochs", description="Most epochs of one training.")
    time_budget_s: float = Field(
        default=240.0,
        gt=0,
        title="Time budget per training (s)",
        description="Training budget: no epoch starts past it, and a running epoch stops at it.",
    )
    batch_size: int = Field(default=64, ge=1, title="Training batch size", description="Pairs per optimizer step.")
    learning_rate: float = Field(default=1e-3, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(default=0.01, ge=0, description="AdamW weight decay.")
    patience: int = Field(default=3, ge=1, description="Epochs without a better val macro-F1 before stopping.")
    grad_clip: float = Field(
        default=1.0, gt=0, title="Gradient clip", description="Largest gradient norm (gradients are clipped to it)."
    )
    seed: int = Field(default=0, title="Training seed", description="Seeds weight init, shuffling and dropout.")
    max_train_pairs: int | None = Field(
        default=None, ge=1, title="Max train pairs", description="Subsample train (smoke runs); empty: all of it."
    )
    latency_repeats: int = Field(
        default=20,
        ge=3,
        title="Latency repeats (trained model)",
        description="Timed runs per batch size when the trained model's latency is measured (median after warm-up).",
    )


class TrainJob(BaseModel):
    """The job file in the candidate's folder. It names features, never labels other than train."""

    features_path: str
    num_classes: int
    train: TrainConfig
    fold: bool = Field(
        default=False,
        description="Train and validate on the rows of train + val that FOLD_FILE names (a cross-validation "
        "fold); else on the train and val splits.",
    )
    smoke: bool = Field(
        default=False,
        description="Only build, one forward pass and one backward pass on a tiny batch (seconds), then stop.",
    )
    threads: int = 2
    audit_hook: bool = True


class WorkerResult(WorkerOutcome):
    """``result.json`` as written by the sandbox. Untrusted: validated, and metrics are recomputed."""

    status: Status
    reason: str = ""
    val_pred: list[int] = Field(default_factory=list)
    test_pred: list[int] = Field(default_factory=list)
    epochs: int = 0
    best_epoch: int = -1
    train_seconds: float = 0.0
    latency_ms: dict[str, float] = Field(default_factory=dict)
    timings_s: dict[str, float] = Field(
        default_factory=dict, description="setup, train, evaluate, save (worker clock)."
    )

    _training_status = field_validator("status")(training_status)
