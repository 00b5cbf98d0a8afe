"""One program to train: :class:`TrainProgramParams`, the parameter model of flow ``train_program``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from evoformer.candidates.job import TrainConfig
from evoformer.config.data import PrepareDataParams
from evoformer.fields import form_schema
from evoformer.sandbox.limits import SandboxLimits


class TrainProgramParams(BaseModel):
    """One program to train, with its data, training and sandbox settings."""

    model_config = ConfigDict(json_schema_extra=form_schema("program_path", "train"))

    program_path: str = Field(title="Program file", description="Path of the candidate program (.py).")
    prelude_path: str | None = Field(
        default=None, title="Prelude file", description="Static helper code prepended to the program."
    )
    data: PrepareDataParams = Field(
        default_factory=PrepareDataParams,
        title="Data",
        description="Where the claim/evidence pairs come from, how they are split, encoded and baselined, "
        "and where runs are stored.",
    )
    train: TrainConfig = Field(default_factory=TrainConfig, title="Training", description="How the program is trained.")
    limits: SandboxLimits = Field(
        default_factory=SandboxLimits, title="Sandbox limits", description="Hard limits on the training's sandbox."
    )
