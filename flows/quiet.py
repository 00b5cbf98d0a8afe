"""Silence the few third-party messages that are known to be harmless here, and nothing else.

Each entry names the logger (or warning category and module) and matches the message. They come
from importing torchao (which ``transformers`` does on its own when torchao is installed):
- ``torchao``: "Failed to load .../torchao/_C_*.so" (CUDA/other-ABI kernels on a CPU-only install);
- ``torchao.kernel.intmm``: "Detected no triton" (Triton kernels are GPU-only);
- ``torch.utils._pytree``: "<enum ...> is an Enum subclass ... register_constant() on Enum
  subclasses is deprecated" (torchao registering its enums with an older torch API).

:func:`quiet_known_warnings` is applied by ``flows/__init__.py``, so the CLI (whose entry imports
``flows``) and every flow process get it before torch or torchao load.
"""

from __future__ import annotations

import logging
import re
import warnings

# (logger name, message regex): records of exactly that logger whose message matches are dropped.
KNOWN_LOG_RECORDS: tuple[tuple[str, str], ...] = (
    ("torchao", r"^Failed to load .*torchao[/\\]_C.*\.so"),
    ("torchao.kernel.intmm", r"Detected no triton"),
    ("torch.utils._pytree", r"is an Enum subclass and is now natively supported by torch\.compile"),
)
# (message regex, category, module regex) for the same messages should a version emit them as warnings.
KNOWN_WARNINGS: tuple[tuple[str, type[Warning], str], ...] = (
    (r".*is an Enum subclass and is now natively supported by torch\.compile", FutureWarning, r"torch\.utils\._pytree"),
    (
        r".*is an Enum subclass and is now natively supported by torch\.compile",
        DeprecationWarning,
        r"torch\.utils\._pytree",
    ),
    (r".*Detected no triton", UserWarning, r"torchao\.kernel\.intmm"),
)


class _DropMatching(logging.Filter):
    """Drops the records whose message matches ``pattern``; lets everything else through."""

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to judge
            return True
        return not self.pattern.search(message)


def quiet_known_warnings() -> None:
    """Install the filters (idempotent)."""
    for name, pattern in KNOWN_LOG_RECORDS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMatching) and f.pattern.pattern == pattern for f in logger.filters):
            logger.addFilter(_DropMatching(pattern))
    for message, category, module in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
