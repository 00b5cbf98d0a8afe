"""Expected failures caused by the user's input, and how they are shown.

A :class:`UserError` is bad input (a data file, a seed, the prelude, a setting, an LLM key or an
unreachable endpoint), not a bug: the CLI prints its message on one line and exits 2, and logs
show the message without a traceback. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

DEBUG_ENV = "EVOFORMER_DEBUG"


class UserError(Exception):
    """Bad input. The message names the file (and the line, where there is one)."""


def debug_enabled() -> bool:
    """Tracebacks of user errors are shown only with ``--debug`` (which sets ``$EVOFORMER_DEBUG``)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes")


def _is_user_error(exc_info: Any) -> bool:
    return isinstance(exc_info, tuple) and len(exc_info) == 3 and isinstance(exc_info[1], UserError)


def install_quiet_user_errors() -> None:
    """Log records that carry a :class:`UserError` keep their message but lose the traceback.

    Prefect's engines log a failing task or flow with ``exc_info``; the traceback of bad input is
    noise to a user, in the terminal and in the dashboard alike. A log-record factory is used, not a
    handler filter, because Prefect adds its handlers after we are imported and in each worker.
    Idempotent; a no-op when :func:`debug_enabled`.
    """
    previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()
    if getattr(previous, "_evoformer_quiet", False) or debug_enabled():
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _is_user_error(record.exc_info):
            record.exc_info, record.exc_text = None, None
        return record

    factory._evoformer_quiet = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
