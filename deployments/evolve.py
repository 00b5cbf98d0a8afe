"""The ``evolve`` deployment: an example nightly schedule with demo-sized parameters.

Two ways to run it:
- ``python -m deployments.evolve`` serves it, with the ``compress`` deployment that its
  ``compress.mode=deployment`` hands the final front to and the ``pipeline`` deployment, from this
  process (no work pool needed);
- ``prefect deploy --all`` (with ``prefect.yaml`` at the project root) registers it on the
  ``evoformer-process`` work pool, for ``prefect worker start --pool evoformer-process``.
"""

from __future__ import annotations

from typing import Any

import flows  # noqa: F401  (telemetry off before Prefect loads)
from flows.evolve import EvolveParams, evolve

DEPLOYMENT_NAME = "evolve-nightly"
CRON = "0 2 * * *"


def example_parameters() -> dict[str, Any]:
    """Parameters of the scheduled run: 3 generations of 6 children, offline unless an LLM is configured."""
    return {"params": EvolveParams(generations=3, children=6).model_dump(mode="json")}


def evolve_deployment():
    """The deployment object, used by ``serve`` here and by the tests."""
    return evolve.to_deployment(
        name=DEPLOYMENT_NAME,
        cron=CRON,
        parameters=example_parameters(),
        tags=["evoformer", "evolve"],
        description="Nightly EvoPrompting run; trigger it from the dashboard with other parameters.",
    )


if __name__ == "__main__":
    from prefect import serve

    from deployments.compress import compress_deployment
    from deployments.pipeline import pipeline_deployment

    serve(evolve_deployment(), compress_deployment(), pipeline_deployment())
