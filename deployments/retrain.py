"""The ``retrain`` deployment: triggered from the dashboard with a run id and candidate ids (or
``failed``), and optional larger sandbox limits or training budget. A failed training's log line
names this deployment with the parameters to paste.

- ``python -m deployments.evolve`` serves it with ``evolve``, ``compress`` and ``pipeline``;
- ``python -m deployments.register`` registers it on the ``evoformer-process`` work pool.
"""

from __future__ import annotations

from typing import Any

import flows  # noqa: F401  (telemetry off before Prefect loads)
from evoformer.evolution.retrain import RETRAIN_DEPLOYMENT
from flows.retrain import retrain

DEPLOYMENT_NAME = RETRAIN_DEPLOYMENT.split("/")[1]
ENTRYPOINT = "flows/retrain.py:retrain"


def deployment_settings() -> dict[str, Any]:
    """What the served and the registered deployment share: no schedule, no defaults (the form asks for the run id)."""
    return {
        "name": DEPLOYMENT_NAME,
        "tags": ["evoformer", "retrain"],
        "description": "Retrain chosen (or all failed) candidates of a run in place, with optional larger limits; "
        "state, lineage, leaderboard, summary and report are updated, and a resumed evolve builds on them.",
    }


def retrain_deployment():
    """The deployment object, used by ``serve`` and by the tests."""
    return retrain.to_deployment(**deployment_settings())
