"""The ``pipeline`` deployment: data, optional synthesis, evolve, compress the top K, report.

``python -m deployments.evolve`` serves it with ``evolve`` and ``compress``; ``prefect deploy
--all`` registers it on the ``evoformer-process`` work pool (see ``prefect.yaml``).
"""

from __future__ import annotations

from typing import Any

import flows  # noqa: F401  (telemetry off before Prefect loads)
from evoformer.candidates.job import TrainConfig
from flows.evolve import EvolveParams
from flows.pipeline import PipelineParams, pipeline

DEPLOYMENT_NAME = "pipeline"


def demo_parameters() -> dict[str, Any]:
    """The demo budget (as ``make demo``): 2 generations of 4 children, 30 s per training, top 1 compressed."""
    params = PipelineParams(evolve=EvolveParams(generations=2, children=4, train=TrainConfig(time_budget_s=30.0)))
    return {"params": params.model_dump(mode="json")}


def pipeline_deployment():
    """The deployment object, used by ``serve`` and by the tests."""
    return pipeline.to_deployment(
        name=DEPLOYMENT_NAME,
        parameters=demo_parameters(),
        tags=["evoformer", "pipeline"],
        description="The whole pipeline with a demo budget; change budgets, operator and steps in the run form.",
    )
