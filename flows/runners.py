"""Which Prefect task runner trains candidates: threads, processes, a Dask cluster or Ray.

Only candidate training goes through this runner; the rest of a flow keeps its own. Every runner
runs the same ``train_candidate`` task, which starts the sandbox on whichever host runs it, so a
remote worker needs the project installed, bubblewrap, and the run and feature folders at the
same paths (shared storage; see the README's "Past one machine").
"""

from __future__ import annotations

from typing import Literal

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner
from pydantic import BaseModel, Field


class RunnerError(RuntimeError):
    """The chosen runner cannot be built here (a missing optional package)."""


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


def make_task_runner(config: RunnerConfig, max_parallel: int) -> TaskRunner:
    """A fresh, not yet started task runner for ``config`` running at most ``max_parallel`` trainings."""
    workers = config.local_workers or max_parallel
    if config.kind == "thread":
        return ThreadPoolTaskRunner(max_workers=max_parallel)
    if config.kind == "process":
        return ProcessPoolTaskRunner(max_workers=workers)
    if config.kind == "dask":
        from prefect_dask import DaskTaskRunner

        if config.address:
            return DaskTaskRunner(address=config.address)
        # One single-threaded worker process per training: the sandbox sets its own torch threads.
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                              "dashboard_address": ":0"})
    try:
        from prefect_ray import RayTaskRunner
    except ImportError as exc:
        raise RunnerError("runner 'ray' needs the optional packages: pip install 'evoformer[ray]' (prefect-ray, ray)") from exc
    return RayTaskRunner(address=config.address) if config.address else RayTaskRunner()
