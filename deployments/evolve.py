"""The ``evolve`` deployment: a nightly schedule with the parameters of ``configs/nightly.yaml``.

Two ways to run it:
- ``python -m deployments.evolve`` serves it, with the ``compress`` deployment that its
  ``compress.mode=deployment`` hands the final front to, the ``pipeline`` deployment and the
  ``retrain`` deployment, from this process (no work pool needed), and serves the runs folder over
  loopback HTTP so that the dashboard's artifacts open the Pareto plot and ``report.html``
  (``flows/file_server.py``);
- ``python -m deployments.register`` registers all four on the ``evoformer-process`` work pool,
  for ``prefect worker start --pool evoformer-process`` (the schedule starts inactive there).
"""

from __future__ import annotations

from typing import Any

import flows  # noqa: F401  (telemetry off before Prefect loads)
from evoformer.config import EvolveParams, load_params
from evoformer.config.files import NIGHTLY
from flows.evolve import evolve

DEPLOYMENT_NAME = "evolve-nightly"
ENTRYPOINT = "flows/evolve.py:evolve"
CRON = "0 2 * * *"
PARAMETERS_FILE = NIGHTLY


def example_parameters() -> dict[str, Any]:
    """Parameters of the scheduled run (configs/nightly.yaml): 3 generations of 6 children, offline
    unless an LLM is configured."""
    return {"params": load_params(EvolveParams, PARAMETERS_FILE).model_dump(mode="json")}


def deployment_settings() -> dict[str, Any]:
    """What the served and the registered deployment share."""
    return {
        "name": DEPLOYMENT_NAME,
        "parameters": example_parameters(),
        "tags": ["evoformer", "evolve"],
        "description": "Nightly EvoPrompting run; trigger it from the dashboard with other parameters.",
    }


def evolve_deployment():
    """The deployment object, used by ``serve`` here and by the tests."""
    return evolve.to_deployment(cron=CRON, **deployment_settings())


if __name__ == "__main__":
    from prefect import serve

    from deployments.compress import compress_deployment
    from deployments.pipeline import pipeline_deployment
    from deployments.retrain import retrain_deployment
    from flows.file_server import serve_run_files

    serve_run_files()  # before serve(): the flow runs it starts inherit $EVOFORMER_FILES_URL
    serve(evolve_deployment(), compress_deployment(), pipeline_deployment(), retrain_deployment())
