"""Which Prefect task runner trains candidates (see ``flows/runners.py`` for how it is built)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class RunnerConfig(BaseModel):
    """The task runner for candidate training; rendered as a form in the Prefect UI."""

    kind: Literal["thread", "process", "dask", "ray"] = Field(
        default="thread", description="thread (default), process, dask (a scheduler address or a LocalCluster) or ray."
    )
    address: str | None = Field(
        default=None,
        description="dask: scheduler address (tcp://host:8786); empty starts a LocalCluster. ray: cluster address.",
    )
    local_workers: int | None = Field(
        default=None, ge=1, description="Workers of a LocalCluster / processes of the pool (default: max_parallel)."
    )
