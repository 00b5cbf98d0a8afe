"""Which Prefect task runner trains candidates (see ``flows/runners.py`` for how it is built)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from evoformer.fields import form_schema


class RunnerConfig(BaseModel):
    """The task runner for candidate training; rendered as a form in the Prefect UI."""

    model_config = ConfigDict(json_schema_extra=form_schema())

    kind: Literal["thread", "process", "dask", "ray"] = Field(
        default="thread",
        title="Task runner kind",
        description="thread (default), process, dask (a scheduler address or a LocalCluster) or ray.",
    )
    address: str | None = Field(
        default=None,
        title="Cluster address",
        description="dask: scheduler address (tcp://host:8786); empty starts a LocalCluster. ray: cluster address.",
    )
    local_workers: int | None = Field(
        default=None,
        ge=1,
        title="Local workers",
        description="Workers of a LocalCluster / processes of the pool (default: max_parallel).",
    )
