"""Thin Prefect tasks around the :mod:`evoformer` domain library: retries, caching, artifacts."""

import os

# Telemetry off before Prefect is imported anywhere in the process.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
