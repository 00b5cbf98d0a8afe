"""The evolve deployment: the served object and prefect.yaml carry a schedule and valid parameters."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from flows.evolve import EvolveParams

ROOT = Path(__file__).resolve().parents[1]


def test_served_deployment_has_the_example_schedule_and_valid_parameters() -> None:
    from deployments.evolve import CRON, DEPLOYMENT_NAME, evolve_deployment

    deployment = evolve_deployment()
    assert deployment.name == DEPLOYMENT_NAME and deployment.flow_name == "evolve"
    assert [s.schedule.cron for s in deployment.schedules] == [CRON]
    params = EvolveParams.model_validate(deployment.parameters["params"])
    assert (params.generations, params.children) == (3, 6)
    # The UI renders a form from this schema: the pydantic model's fields are in it.
    from prefect.utilities.callables import parameter_schema

    from flows.evolve import evolve

    schema = json.dumps(parameter_schema(evolve.fn).model_dump())
    for field in ("generations", "children", "max_parallel", "temperatures", "error_threshold", "seed_folder", "prelude_path"):
        assert f'"{field}"' in schema, field


def test_prefect_yaml_deployment_points_at_the_flow_with_valid_parameters() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (deployment,) = [d for d in config["deployments"] if d["name"] == "evolve-nightly"]
    path, name = deployment["entrypoint"].split(":")
    assert (ROOT / path).is_file() and f"def {name}(" in (ROOT / path).read_text()
    assert deployment["schedules"][0]["cron"] == "0 2 * * *"
    params = EvolveParams.model_validate(deployment["parameters"]["params"])
    assert params.generations == 3 and params.operator.kind == "auto"
    assert deployment["work_pool"]["name"] == "evoformer-process"


def test_compress_deployment_is_in_both_places_and_renders_a_form() -> None:
    from prefect.utilities.callables import parameter_schema

    from deployments.compress import DEPLOYMENT_NAME, compress_deployment
    from flows.compress import compress

    deployment = compress_deployment()
    assert deployment.name == DEPLOYMENT_NAME and deployment.flow_name == "compress" and not deployment.schedules
    schema = json.dumps(parameter_schema(compress.fn).model_dump())
    for field in ("run_id", "candidates", "top_k", "sparsities", "structured_ratios", "quantizers", "finetune"):
        assert f'"{field}"' in schema, field
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (entry,) = [d for d in config["deployments"] if d["name"] == "compress"]
    path, name = entry["entrypoint"].split(":")
    assert f"def {name}(" in (ROOT / path).read_text() and entry["work_pool"]["name"] == "evoformer-process"


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
    rendered = hydrate(action.parameters, HydrationContext(render_jinja=True, jinja_context={"flow_run": {"id": flow_run_id}}))
    params = CompressParams.model_validate(rendered["params"])
    assert params.top_k == 2
    update_summary(tmp_path / "other", {"evolve": {"flow_run_id": str(uuid4())}})
    update_summary(tmp_path / "mine", {"evolve": {"flow_run_id": flow_run_id}})
    assert run_folder(StorageConfig(runs_dir=str(tmp_path)), params.run_id) == tmp_path / "mine"


def test_pipeline_deployment_is_in_both_places_with_demo_parameters_and_a_form() -> None:
    from prefect.utilities.callables import parameter_schema

    from deployments.pipeline import DEPLOYMENT_NAME, pipeline_deployment
    from flows.pipeline import PipelineParams, pipeline

    deployment = pipeline_deployment()
    assert deployment.name == DEPLOYMENT_NAME and deployment.flow_name == "pipeline"
    served = PipelineParams.model_validate(deployment.parameters["params"])
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (entry,) = [d for d in config["deployments"] if d["name"] == "pipeline"]
    registered = PipelineParams.model_validate(entry["parameters"]["params"])
    for params in (served, registered):
        assert (params.evolve.generations, params.evolve.children, params.evolve.train.time_budget_s) == (2, 4, 30.0)
        assert params.compression.top_k == 1 and not params.synthesis.enabled
    path, name = entry["entrypoint"].split(":")
    assert f"def {name}(" in (ROOT / path).read_text()
    schema = json.dumps(parameter_schema(pipeline.fn).model_dump())
    for field in ("evolve", "synthesis", "compression", "top_k", "generations", "runner", "structured_ratios"):
        assert f'"{field}"' in schema, field
