"""The ``pipeline`` deployment: data, optional synthesis, evolve, compress the top K, report, with
the demo budget of ``configs/demo.yaml`` (the same as ``make demo``).

``python -m deployments.evolve`` serves it with ``evolve`` and ``compress``; ``python -m
deployments.register`` registers it on the ``evoformer-process`` work pool.
"""

from __future__ import annotations

from typing import Any

import flows  # noqa: F401  (telemetry off before Prefect loads)
from evoformer.config import PipelineParams, load_params
from evoformer.config.files import DEMO
from flows.pipeline import pipeline

DEPLOYMENT_NAME = "pipeline"
ENTRYPOINT = "flows/pipeline.py:pipeline"
PARAMETERS_FILE = DEMO


def demo_parameters() -> dict[str, Any]:
    """The demo budget (configs/demo.yaml, as ``make demo``): 2 generations of 4 children, 30 s per
    training, the best candidate compressed."""
    return {"params": load_params(PipelineParams, PARAMETERS_FILE).model_dump(mode="json")}


def deployment_settings() -> dict[str, Any]:
    """What the served and the registered deployment share."""
    return {
        "name": DEPLOYMENT_NAME,
        "parameters": demo_parameters(),
        "tags": ["evoformer", "pipeline"],
        "description": "The whole pipeline (data, optional synthesis, evolve, compress the top K, report.html) "
        "with a demo budget; change budgets, operator and steps in the run form.",
    }


def pipeline_deployment():
    """The deployment object, used by ``serve`` and by the tests."""
    return pipeline.to_deployment(**deployment_settings())
