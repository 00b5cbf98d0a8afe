"""The ``compress`` deployment (triggered from the dashboard with a run id and candidate ids), and
an automation that compresses each finished evolve run's best candidates.

- ``python -m deployments.evolve`` serves ``evolve`` and ``compress`` together;
- ``python -m deployments.register`` registers both on the ``evoformer-process`` work pool;
- ``python -m deployments.compress --automation [--top K]`` creates the automation on the server.
"""

from __future__ import annotations

import argparse
from typing import Any
from uuid import UUID

import flows  # noqa: F401  (telemetry off before Prefect loads)
from flows.compress import FLOW_RUN_PREFIX, compress

DEPLOYMENT_NAME = "compress"
ENTRYPOINT = "flows/compress.py:compress"
AUTOMATION_NAME = "compress-after-evolve"


def deployment_settings() -> dict[str, Any]:
    """What the served and the registered deployment share: no schedule, no defaults (the form asks for the run id)."""
    return {
        "name": DEPLOYMENT_NAME,
        "tags": ["evoformer", "compress"],
        "description": "Prune and quantize chosen candidates of a run; every variant measured against its fp32 model.",
    }


def compress_deployment():
    """The deployment object, used by ``serve`` and by the tests."""
    return compress.to_deployment(**deployment_settings())


def automation_parameters(top_k: int) -> dict[str, Any]:
    """``compress`` parameters rendered by the server when evolve completes: the run is found by
    the evolve flow run's id, which evolve records in its summary."""
    template = {"__prefect_kind": "jinja", "template": FLOW_RUN_PREFIX + "{{ flow_run.id }}"}
    return {"params": {"run_id": template, "top_k": top_k}}


def compress_after_evolve(deployment_id: UUID, top_k: int = 1):
    """An automation: every completed ``evolve`` flow run starts ``compress`` on its top K."""
    from datetime import timedelta

    from prefect.automations import Automation, EventTrigger, Posture, ResourceSpecification, RunDeployment

    return Automation(
        name=AUTOMATION_NAME,
        description=f"Compress the top {top_k} candidates of every completed evolve run.",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Completed"},
            match_related=ResourceSpecification({"prefect.resource.role": "flow", "prefect.resource.name": "evolve"}),
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            RunDeployment(source="selected", deployment_id=deployment_id, parameters=automation_parameters(top_k))
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--automation", action="store_true", help="create the compress-after-evolve automation on the server"
    )
    parser.add_argument("--top", type=int, default=1, help="candidates the automation compresses per evolve run")
    args = parser.parse_args()
    if not args.automation:
        from prefect import serve

        serve(compress_deployment())
        return
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(f"compress/{DEPLOYMENT_NAME}")
    automation = compress_after_evolve(deployment.id, args.top).create()
    print(f"automation {automation.name} ({automation.id}): evolve completed -> compress top {args.top}")


if __name__ == "__main__":
    main()
