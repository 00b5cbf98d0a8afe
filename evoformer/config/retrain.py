"""Which candidates of a run to train again, and with which limits: :class:`RetrainParams` (flow ``retrain``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from evoformer.candidates.job import TrainConfig
from evoformer.runs import StorageConfig
from evoformer.sandbox.limits import SandboxLimits


class RetrainParams(BaseModel):
    """Candidates of a run to retrain in place; rendered as a form in the Prefect UI."""

    run_id: str = Field(
        description="The run whose candidates are retrained (a folder under storage.runs_dir, or "
        "flow-run:<id of the evolve flow run>)."
    )
    candidates: list[str] = Field(default_factory=list, description="Candidate ids (e.g. g01-c02).")
    failed: bool = Field(default=False, description="Also retrain every candidate that failed in training.")
    limits: dict[str, Any] = Field(
        default_factory=dict,
        description='Overrides of the run\'s sandbox limits, e.g. {"timeout_s": 1800}; the rest as the run had them.',
    )
    train: dict[str, Any] = Field(
        default_factory=dict,
        description='Overrides of the run\'s training config, e.g. {"time_budget_s": 600}; the rest as it was.',
    )
    max_parallel: int = Field(default=1, ge=1, description="Trainings at once.")
    storage: StorageConfig = Field(default_factory=StorageConfig)

    @model_validator(mode="after")
    def _something_to_do(self) -> RetrainParams:
        if not self.candidates and not self.failed:
            raise ValueError("name candidate ids, or set failed to retrain every failed candidate")
        for name, model, overrides in (("limits", SandboxLimits, self.limits), ("train", TrainConfig, self.train)):
            unknown = sorted(set(overrides) - set(model.model_fields))
            if unknown:
                raise ValueError(f"{name}: {model.__name__} has no field {', '.join(unknown)}")
        return self
