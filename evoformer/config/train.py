"""One program to train: :class:`TrainProgramParams`, the parameter model of flow ``train_program``."""

from __future__ import annotations

from pydantic import BaseModel, Field

from evoformer.candidates.job import TrainConfig
from evoformer.config.data import PrepareDataParams
from evoformer.sandbox.limits import SandboxLimits


class TrainProgramParams(BaseModel):
    """One program to train, with its data, training and sandbox settings."""

    program_path: str = Field(description="Path of the candidate program (.py).")
    prelude_path: str | None = Field(default=None, description="Static helper code prepended to the program.")
    data: PrepareDataParams = Field(default_factory=PrepareDataParams)
    train: TrainConfig = Field(default_factory=TrainConfig)
    limits: SandboxLimits = Field(default_factory=SandboxLimits)
