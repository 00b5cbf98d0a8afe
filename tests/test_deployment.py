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
