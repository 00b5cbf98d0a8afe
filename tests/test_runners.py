"""Candidate training on other Prefect task runners: a local Dask cluster of two workers, a
process pool, and a clear error for a runner whose packages are missing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_evolve_flow import FAST_TRAIN, TINY_SEED, evolve_params

from evoformer.evolution.population import SelectionConfig
from flows.runners import RunnerConfig, RunnerError, make_task_runner

pytestmark = pytest.mark.integration  # trains in the sandbox, runs flows or starts servers


@pytest.fixture(scope="module")
def tiny_seed_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-seeds")
    (folder / "tiny_a.py").write_text(TINY_SEED)
    (folder / "tiny_b.py").write_text(TINY_SEED.replace("hidden: int = 32", "hidden: int = 48"))
    return folder


def test_dask_cluster_of_two_workers_trains_the_candidates(
    prefect_harness, small_climate_fever, feature_cache_dir, tiny_seed_folder, tmp_path
) -> None:
    from distributed import Client, LocalCluster

    from flows.evolve import evolve

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        params = evolve_params(
            small_climate_fever,
            feature_cache_dir,
            tmp_path / "runs",
            tiny_seed_folder,
            "dask-run",
            generations=1,
            children=2,
            max_parallel=2,
            train=FAST_TRAIN.model_copy(update={"max_epochs": 1}),
            selection=SelectionConfig(crossover_rate=0.0),  # mutations: two tiny seeds cross to themselves
            runner=RunnerConfig(kind="dask", address=cluster.scheduler_address),
        )
        summary = evolve(params)
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)

    lineage = json.loads((Path(summary["run_dir"]) / "lineage.json").read_text())
    trained = [row for row in lineage if row["status"] == "ok"]
    assert len(trained) >= 3, [(r["id"], r["status"], r["reason"]) for r in lineage]
    from evoformer.sandbox.isolation import bubblewrap_problem

    expected = "bubblewrap(" if bubblewrap_problem() is None else "NO-NAMESPACES"
    for row in trained:  # weights and verdicts landed in the run folder, written by the remote task
        assert (Path(row["folder"]) / "weights.safetensors").is_file() and (
            Path(row["folder"]) / "metrics.json"
        ).is_file()
        verdict = json.loads((Path(row["folder"]) / "metrics.json").read_text())
        assert expected in verdict["isolation"] and "rlimit-as" in verdict["isolation"], verdict[
            "isolation"
        ]  # the sandbox holds there
    trainings = sum(1 for row in lineage if row["status"] not in ("rejected", "duplicate", "proposal_failed"))
    assert sum(executed.values()) == trainings, executed  # every training ran on the cluster, none in the flow process
    assert all(count >= 1 for count in executed.values()), executed  # both workers took trainings


def test_process_pool_runner_trains_in_worker_processes(
    prefect_harness, small_climate_fever, feature_cache_dir, tiny_seed_folder, tmp_path
) -> None:
    from flows.evolve import evolve

    folder = tmp_path / "one-seed"
    folder.mkdir()
    shutil.copy(tiny_seed_folder / "tiny_a.py", folder / "tiny_a.py")
    params = evolve_params(
        small_climate_fever,
        feature_cache_dir,
        tmp_path / "runs",
        folder,
        "process-run",
        generations=0,
        max_parallel=1,
        train=FAST_TRAIN.model_copy(update={"max_epochs": 1, "seed": 7}),
        runner=RunnerConfig(kind="process"),
    )
    summary = evolve(params)
    assert summary["candidates"]["ok"] == 1, summary["candidates"]


def test_runner_configs_build_their_task_runners(monkeypatch) -> None:
    import sys

    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    assert isinstance(make_task_runner(RunnerConfig(), 3), ThreadPoolTaskRunner)
    assert make_task_runner(RunnerConfig(), 3)._max_workers == 3
    assert isinstance(make_task_runner(RunnerConfig(kind="process", local_workers=2), 1), ProcessPoolTaskRunner)
    remote = make_task_runner(RunnerConfig(kind="dask", address="tcp://10.0.0.5:8786"), 2)
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://10.0.0.5:8786"
    monkeypatch.setitem(sys.modules, "prefect_ray", None)  # not installed: a clear error naming the extra
    with pytest.raises(RunnerError, match="evoformer\\[ray\\]"):
        make_task_runner(RunnerConfig(kind="ray"), 2)
