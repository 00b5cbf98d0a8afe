"""Prefect flows composed from :mod:`tasks`."""

import tasks  # noqa: F401  (sets telemetry-off environment before Prefect is imported)
from evoformer.errors import install_quiet_user_errors
from flows.quiet import quiet_known_warnings

quiet_known_warnings()  # before torch / torchao load: their known-harmless messages are dropped
install_quiet_user_errors()  # bad input is logged as its message, without a traceback (unless --debug)
