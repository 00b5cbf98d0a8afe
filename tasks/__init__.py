"""Thin Prefect tasks around the :mod:`evoformer` domain library: retries, caching, artifacts."""

import os

# Telemetry off before Prefect is imported anywhere in the process.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Prefect's ephemeral server gets 20 s to start by default. On a 2-core machine that is busy
# training (CI, a second evoformer run), it took longer and the command died with "Timed out while
# attempting to connect to ephemeral Prefect API server". Two minutes costs nothing when idle.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
