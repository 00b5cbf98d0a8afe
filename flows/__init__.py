"""Prefect flows composed from :mod:`tasks`."""

import tasks  # noqa: F401  (sets telemetry-off environment before Prefect is imported)
from flows.quiet import quiet_known_warnings

quiet_known_warnings()  # before torch / torchao load: their known-harmless messages are dropped
