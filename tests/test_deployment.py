"""The deployments, declared in Python only (deployments/*.py; no prefect.yaml): served and
registered on a work pool with the same names, schedules and parameters, from configs/*.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evoformer.config import EvolveParams, PipelineParams, load_params
from evoformer.config.files import DEMO, NIGHTLY

pytestmark = pytest.mark.integration  # trains in the sandbox, runs flows or starts servers

ROOT = Path(__file__).resolve().parents[1]


def _entrypoint_is_a_flow(entrypoint: str) -> None:
    path, name = entrypoint.split(":")
    assert (ROOT / path).is_file() and f"def {name}(" in (ROOT / path).read_text()


def test_served_deployment_has_the_example_schedule_and_the_nightly_parameters() -> None:
    from deployments.evolve import CRON, DEPLOYMENT_NAME, ENTRYPOINT, evolve_deployment

    deployment = evolve_deployment()
    assert deployment.name == DEPLOYMENT_NAME and deployment.flow_name == "evolve"
    assert [s.schedule.cron for s in deployment.schedules] == [CRON]
    params = EvolveParams.model_validate(deployment.parameters["params"])
    assert (params.generations, params.children, params.max_parallel, params.operator.kind) == (3, 6, 1, "auto")
    assert params == load_params(EvolveParams, NIGHTLY)  # configs/nightly.yaml is the one source
    _entrypoint_is_a_flow(ENTRYPOINT)
    # The UI renders a form from this schema: the pydantic model's fields are in it.
    from prefect.utilities.callables import parameter_schema

    from flows.evolve import evolve

    schema = json.dumps(parameter_schema(evolve.fn).model_dump())
    for field in (
        "generations",
        "children",
        "max_parallel",
        "temperatures",
        "error_threshold",
        "seed_folder",
        "prelude_path",
    ):
        assert f'"{field}"' in schema, field


def test_no_prefect_yaml_and_the_work_pool_deployments_match_the_served_ones() -> None:
    from deployments import WORK_POOL
    from deployments.compress import compress_deployment
    from deployments.evolve import CRON, evolve_deployment
    from deployments.pipeline import pipeline_deployment
    from deployments.register import work_pool_deployments
    from deployments.retrain import retrain_deployment

    assert not (ROOT / "prefect.yaml").exists()  # the deployments are declared once, in Python
    registered = {d.name: d for d in work_pool_deployments()}
    served = {
        d.name: d for d in (evolve_deployment(), compress_deployment(), pipeline_deployment(), retrain_deployment())
    }
    assert set(registered) == set(served) == {"evolve-nightly", "compress", "pipeline", "retrain"}
    for name, deployment in registered.items():
        assert deployment.work_pool_name == WORK_POOL and deployment.flow_name == served[name].flow_name
        assert deployment.parameters == served[name].parameters and deployment.tags == served[name].tags
        _entrypoint_is_a_flow(deployment.entrypoint)
    (schedule,) = registered["evolve-nightly"].schedules
    assert schedule.schedule.cron == CRON and schedule.schedule.timezone == "UTC" and schedule.active is False
    assert not registered["compress"].schedules and not registered["pipeline"].schedules
    assert not registered["retrain"].schedules


def test_retrain_deployment_renders_a_form() -> None:
    from prefect.utilities.callables import parameter_schema

    from deployments.retrain import DEPLOYMENT_NAME, ENTRYPOINT, retrain_deployment
    from evoformer.evolution.retrain import RETRAIN_DEPLOYMENT
    from flows.retrain import retrain

    deployment = retrain_deployment()
    assert f"{deployment.flow_name}/{deployment.name}" == RETRAIN_DEPLOYMENT == f"retrain/{DEPLOYMENT_NAME}"
    schema = json.dumps(parameter_schema(retrain.fn).model_dump())
    for field in ("run_id", "candidates", "failed", "limits", "train", "runs_dir"):
        assert f'"{field}"' in schema, field
    _entrypoint_is_a_flow(ENTRYPOINT)


def test_register_creates_the_deployments_on_a_server(prefect_harness) -> None:
    from prefect import deploy
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    from deployments.register import work_pool_deployments

    pool = "evoformer-process-test"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"), overwrite=True)
    deploy(
        *work_pool_deployments(pool),
        work_pool_name=pool,
        build=False,
        push=False,
        print_next_steps_message=False,
        ignore_warnings=True,
    )
    with get_client(sync_client=True) as client:
        evolve = client.read_deployment_by_name("evolve/evolve-nightly")
        pipeline = client.read_deployment_by_name("pipeline/pipeline")
        compress = client.read_deployment_by_name("compress/compress")
    assert {d.work_pool_name for d in (evolve, pipeline, compress)} == {pool}
    assert evolve.entrypoint == "flows/evolve.py:evolve" and [s.active for s in evolve.schedules] == [False]
    assert EvolveParams.model_validate(evolve.parameters["params"]).generations == 3
    assert PipelineParams.model_validate(pipeline.parameters["params"]).compression.top_k == 1
    assert str(ROOT) in json.dumps(evolve.pull_steps)  # flow runs start in this checkout


def test_compress_deployment_renders_a_form() -> None:
    from prefect.utilities.callables import parameter_schema

    from deployments.compress import DEPLOYMENT_NAME, ENTRYPOINT, compress_deployment
    from flows.compress import compress

    deployment = compress_deployment()
    assert deployment.name == DEPLOYMENT_NAME and deployment.flow_name == "compress" and not deployment.schedules
    schema = json.dumps(parameter_schema(compress.fn).model_dump())
    for field in ("run_id", "candidates", "top_k", "sparsities", "structured_ratios", "quantizers", "finetune"):
        assert f'"{field}"' in schema, field
    _entrypoint_is_a_flow(ENTRYPOINT)


def test_automation_renders_the_evolve_flow_run_into_a_run_the_compress_flow_finds(tmp_path) -> None:
    from uuid import uuid4

    from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate

    from deployments.compress import compress_after_evolve
    from evoformer.runs import StorageConfig, update_summary
    from flows.compress import CompressParams, run_folder

    deployment_id = uuid4()
    automation = compress_after_evolve(deployment_id, top_k=2)
    assert automation.trigger.expect == {"prefect.flow-run.Completed"}
    (action,) = automation.actions
    assert action.deployment_id == deployment_id
    # What the server does with the action's parameters when an evolve run completes:
    flow_run_id = str(uuid4())
    rendered = hydrate(
        action.parameters, HydrationContext(render_jinja=True, jinja_context={"flow_run": {"id": flow_run_id}})
    )
    params = CompressParams.model_validate(rendered["params"])
    assert params.top_k == 2
    update_summary(tmp_path / "other", {"evolve": {"flow_run_id": str(uuid4())}})
    update_summary(tmp_path / "mine", {"evolve": {"flow_run_id": flow_run_id}})
    assert run_folder(StorageConfig(runs_dir=str(tmp_path)), params.run_id) == tmp_path / "mine"


def test_pipeline_deployment_has_the_demo_parameters_and_a_form() -> None:
    from prefect.utilities.callables import parameter_schema

    from deployments.pipeline import DEPLOYMENT_NAME, ENTRYPOINT, pipeline_deployment
    from flows.pipeline import pipeline

    deployment = pipeline_deployment()
    assert deployment.name == DEPLOYMENT_NAME and deployment.flow_name == "pipeline"
    params = PipelineParams.model_validate(deployment.parameters["params"])
    assert (params.evolve.generations, params.evolve.children, params.evolve.train.time_budget_s) == (2, 4, 15.0)
    assert params.compression.top_k == 1 and not params.synthesis.enabled
    assert params == load_params(PipelineParams, DEMO)  # configs/demo.yaml, as `make demo`
    _entrypoint_is_a_flow(ENTRYPOINT)
    schema = json.dumps(parameter_schema(pipeline.fn).model_dump())
    for field in ("evolve", "synthesis", "compression", "top_k", "generations", "runner", "structured_ratios"):
        assert f'"{field}"' in schema, field
