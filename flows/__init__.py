"""Prefect flows composed from :mod:`tasks`."""

import tasks  # noqa: F401  (sets telemetry-off environment before Prefect is imported)
