"""Which Prefect task runner trains candidates: threads, processes, a Dask cluster or Ray.

Only candidate training goes through this runner; the rest of a flow keeps its own. Every runner
runs the same ``train_candidate`` task, which starts the sandbox on whichever host runs it, so a
remote worker needs the project installed, bubblewrap, and the run and feature folders at the
same paths (shared storage; see the README's "Past one machine").
"""

from __future__ import annotations

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from evoformer.config.runners import RunnerConfig  # noqa: F401  (declared in evoformer/config)


class RunnerError(RuntimeError):
    """The chosen runner cannot be built here (a missing optional package)."""


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
        return DaskTaskRunner(
            cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True, "dashboard_address": ":0"}
        )
    try:
        from prefect_ray import RayTaskRunner
    except ImportError as exc:
        raise RunnerError(
            "runner 'ray' needs the optional packages: pip install 'evoformer[ray]' (prefect-ray, ray)"
        ) from exc
    return RayTaskRunner(address=config.address) if config.address else RayTaskRunner()
