"""Failed trainings are Failed task runs; the retrain flow trains chosen candidates of a run again,
in place, and a resumed evolve builds on them.

One tiny evolve run (module fixture): two seeds, ``tiny`` and ``slow``; ``slow`` reserves more
memory in ``build_model`` than the run's sandbox allows (its address-space cap), so it is killed
for memory on every try while ``tiny`` trains. No clock is involved.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_evolve_flow import TINY_SEED, evolve_params

from evoformer.candidates.evaluate import CandidateResult
from evoformer.candidates.job import Status, TrainConfig
from evoformer.evolution.population import Individual, SelectionConfig
from evoformer.evolution.retrain import (
    RETRAIN_DEPLOYMENT,
    RetrainError,
    RetrainTarget,
    choose,
    overridden,
    reset,
    retrain_hint,
    suggested_overrides,
)
from evoformer.sandbox.limits import SandboxLimits

pytestmark = pytest.mark.integration  # trains in the sandbox and runs flows

# 2.5 GB of address space (never touched) beside the model: over SMALL_MEMORY_MB, which ``tiny``
# trains within, and under the default cap the retrain restores.
SLOW_SEED = TINY_SEED.replace("import torch.nn as nn", "import torch\nimport torch.nn as nn").replace(
    "    return Tiny(input_dim, num_classes)",
    "    scratch = torch.empty(625_000_000)\n    return Tiny(input_dim + 0 * scratch.dim(), num_classes)",
)
SMALL_MEMORY_MB = 1536
RUN_ID = "retrain-me"


def _params(small_climate_fever: Path, feature_cache_dir: Path, tmp_path: Path, generations: int):
    seeds = tmp_path / "seeds"
    if not seeds.is_dir():
        seeds.mkdir()
        (seeds / "tiny.py").write_text(TINY_SEED)
        (seeds / "slow.py").write_text(SLOW_SEED)
    return evolve_params(
        small_climate_fever,
        feature_cache_dir,
        tmp_path / "runs",
        seeds,
        RUN_ID,
        generations=generations,
        children=1,
        max_parallel=1,  # the seeds one after the other: tiny is not slowed by slow's products
        train=TrainConfig(max_epochs=1, patience=1, time_budget_s=60, latency_repeats=3),
        limits=SandboxLimits(memory_mb=SMALL_MEMORY_MB),
        # Every child is a crossover of the two seeds: it names slow as a parent only once slow trained.
        selection=SelectionConfig(crossover_rate=1.0, parents_k=2),
    )


@pytest.fixture(scope="module")
def failed_run(prefect_harness, small_climate_fever, feature_cache_dir, tmp_path_factory):
    """The seeds-only evolve run in which ``slow`` failed: its summary and its folder."""
    from flows.evolve import evolve

    tmp = tmp_path_factory.mktemp("retrain")
    summary = evolve(_params(small_climate_fever, feature_cache_dir, tmp, generations=0))
    return summary, tmp


def _task_runs(flow_run_id: str) -> dict[str, object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name: run for run in runs}


def test_a_failed_training_is_a_failed_task_run_in_a_completed_flow_run(failed_run) -> None:
    from prefect.client.orchestration import get_client

    summary, _ = failed_run
    statuses = {b["id"]: b["status"] for b in summary["leaderboard"]}
    assert statuses == {"seed-tiny": "ok", "seed-slow": "killed"}, statuses
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(summary["flow_run_id"]).state.is_completed()
    runs = _task_runs(summary["flow_run_id"])
    failed, trained = runs["train-seed-slow"].state, runs["train-seed-tiny"].state
    assert failed.is_failed() and failed.name == "Killed"
    assert failed.message.startswith("killed: memory limit reached") and "allocate" in failed.message
    assert RETRAIN_DEPLOYMENT in failed.message and '"candidates": ["seed-slow"]' in failed.message
    assert '"memory_mb": 3072' in failed.message  # the hint suggests twice the memory
    assert trained.is_completed()
    # A transient failure: the sandboxed training was tried three times (never cached), the
    # orchestrator's task run failed once with its result.
    sandbox = runs["sandbox-seed-slow"]
    assert sandbox.state.is_failed() and sandbox.run_count == 3 and runs["train-seed-slow"].run_count == 1


def test_retrain_makes_a_failed_candidate_ok_and_a_resumed_evolve_breeds_from_it(
    failed_run, small_climate_fever, feature_cache_dir
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    from evoformer.config.retrain import RetrainParams
    from evoformer.runs import StorageConfig
    from flows.evolve import evolve
    from flows.retrain import retrain

    summary, tmp = failed_run
    run_dir = Path(summary["run_dir"])
    params = RetrainParams(
        run_id=RUN_ID, failed=True, limits={"memory_mb": 6144}, storage=StorageConfig(runs_dir=str(tmp / "runs"))
    )
    state = retrain(params, return_state=True)
    assert state.is_completed()
    result = state.result()
    (retrained,) = result["candidates"]
    assert retrained["id"] == "seed-slow" and retrained["status"] == "ok", retrained
    assert "limits.memory_mb=6144" in retrained["reason"]

    saved = {i["id"]: i for i in json.loads((run_dir / "evolution" / "state.json").read_text())["individuals"]}
    lineage = {i["id"]: i for i in json.loads((run_dir / "lineage.json").read_text())}
    for record in (saved["seed-slow"], lineage["seed-slow"]):
        assert record["status"] == "ok" and record["stage"] == "full" and record["val_macro_f1"] is not None
    recorded = json.loads((run_dir / "summary.json").read_text())
    assert recorded["evolve"]["candidates"]["ok"] == 2 and recorded["evolve"]["flow_run_id"] == summary["flow_run_id"]
    assert recorded["retrain"]["limits"] == {"memory_mb": 6144}
    with get_client(sync_client=True) as client:
        (board,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["evolve-leaderboard"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
            )
        )
    rows = json.loads(board.data) if isinstance(board.data, str) else board.data
    assert {r["id"]: r["status"] for r in rows}["seed-slow"] == "ok"

    # The same parameters and one more generation: evolve resumes the retrained population.
    resumed = evolve(_params(small_climate_fever, feature_cache_dir, tmp, generations=1))
    assert resumed["generations"] == 1
    children = [i for i in json.loads((run_dir / "lineage.json").read_text()) if i["generation"] == 1]
    assert children and all(sorted(c["parents"]) == ["seed-slow", "seed-tiny"] for c in children), children


def _individual(id_: str, status: Status, **extra) -> Individual:
    return Individual(id=id_, generation=0, operator="seed", program_hash=id_, status=status, **extra)


def test_choose_reset_and_overrides() -> None:
    people = [
        _individual("a", Status.OK, params=10, val_macro_f1=0.5, stage="full"),
        _individual("b", Status.TIMEOUT, reason="wall clock"),
        _individual("c", Status.DUPLICATE, copy_of="a"),
        _individual("d", Status.SANDBOX_ERROR),
    ]
    assert [i.id for i in choose(people, [], failed=True)] == ["b", "d"]
    assert [i.id for i in choose(people, ["a"], failed=False)] == ["a"]
    with pytest.raises(RetrainError, match="no candidate x"):
        choose(people, ["x"], failed=False)
    with pytest.raises(RetrainError, match="no program of their own"):
        choose(people, ["c"], failed=False)
    fresh = reset(people[0].model_copy(update={"retired": True}))
    assert fresh.status == Status.PENDING and fresh.val_macro_f1 is None and fresh.stage == "" and fresh.retired
    assert overridden(SandboxLimits(), {"timeout_s": 5}).timeout_s == 5
    with pytest.raises(RetrainError, match="no field nope"):
        overridden(SandboxLimits(), {"nope": 1})


def test_retrain_params_need_candidates_and_known_override_fields() -> None:
    from pydantic import ValidationError

    from evoformer.config.retrain import RetrainParams

    assert RetrainParams(run_id="r", candidates=["g01-c00"]).limits == {}
    with pytest.raises(ValidationError, match="name candidate ids"):
        RetrainParams(run_id="r")
    with pytest.raises(ValidationError, match="TrainConfig has no field budget"):
        RetrainParams(run_id="r", failed=True, train={"budget": 1})


def test_the_hint_names_the_deployment_and_parameters_to_paste(tmp_path) -> None:
    from evoformer.layout import RunLayout

    target = RetrainTarget.of(RunLayout(tmp_path / "runs" / "r1"), "g01-c02")
    result = CandidateResult(name="g01-c02", program_hash="h", status=Status.KILLED, reason="memory cap")
    hint = retrain_hint(target, result, TrainConfig(), SandboxLimits(memory_mb=1024))
    parameters = json.loads(hint.split(" with ", 1)[1])
    assert hint.startswith(f"to retrain g01-c02, run deployment {RETRAIN_DEPLOYMENT}")
    assert parameters == {
        "params": {
            "run_id": "r1",
            "candidates": ["g01-c02"],
            "storage": {"runs_dir": str((tmp_path / "runs").resolve())},
            "limits": {"memory_mb": 2048},
        }
    }
    from evoformer.config.retrain import RetrainParams

    assert RetrainParams.model_validate(parameters["params"]).limits == {"memory_mb": 2048}
    timed_out = result.model_copy(update={"status": Status.TIMEOUT, "reason": "wall-clock limit of 30 s reached"})
    assert suggested_overrides(timed_out, TrainConfig(), SandboxLimits(timeout_s=30)) == {"limits": {"timeout_s": 60.0}}
    broken = result.model_copy(update={"status": Status.BUILD_ERROR, "reason": "NameError: x"})
    assert suggested_overrides(broken, TrainConfig(), SandboxLimits()) == {}
