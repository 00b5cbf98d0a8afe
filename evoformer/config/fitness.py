"""How a candidate's fitness is measured: cross-validation folds over train + val, and the cascade."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from evoformer.fields import form_schema


class CascadeConfig(BaseModel):
    """Stage 1 trains every child on the first fold with a short budget; only promising children
    go on to every fold at the full budget. Seeds always go on (they are the reference)."""

    model_config = ConfigDict(json_schema_extra=form_schema())

    enabled: bool = Field(
        default=True, title="Cascade on", description="Screen children with a short first stage before full evaluation."
    )
    budget_fraction: float = Field(
        default=0.25,
        title="Stage-1 budget share",
        gt=0,
        le=1,
        description="Stage 1's share of the full training budget (time and epochs, at least one epoch).",
    )
    margin: float = Field(
        default=0.02,
        title="Stage-1 margin (macro-F1)",
        ge=0,
        description="A child goes on when no member of the current front that is as small or smaller beat it "
        "in stage 1 by more than this macro-F1.",
    )
    top_fraction: float = Field(
        default=0.5,
        title="Stage-1 top share",
        ge=0,
        le=1,
        description="A child also goes on when its stage-1 score is in this top share of its generation.",
    )


class FitnessConfig(BaseModel):
    """Fitness is the mean val macro-F1 over claim-grouped, label-stratified folds of train + val."""

    model_config = ConfigDict(json_schema_extra=form_schema())

    folds: int = Field(
        default=3,
        title="Cross-validation folds",
        ge=1,
        le=10,
        description="Cross-validation folds over train + val. 1 keeps the single train/val split (no standard error).",
    )
    seed: int = Field(default=0, title="Fold seed", description="Seeds the assignment of claims to folds.")
    cascade: CascadeConfig = Field(
        default_factory=CascadeConfig,
        title="Cascade",
        description="Stage 1 trains every child on the first fold with a short budget; only promising children "
        "go on to every fold at the full budget.",
    )
