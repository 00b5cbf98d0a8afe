"""The label set of the claim/evidence task and its normalisation."""

from __future__ import annotations

import numbers
from typing import SupportsInt, cast

LABELS: tuple[str, ...] = ("SUPPORTS", "REFUTES", "NOT_ENOUGH_INFO")
"""Class names in index order. The order matches Climate-FEVER's integer labels on the hub."""

LABEL_TO_ID: dict[str, int] = {name: i for i, name in enumerate(LABELS)}

_ALIASES: dict[str, str] = {
    "SUPPORT": "SUPPORTS",
    "SUPPORTED": "SUPPORTS",
    "REFUTE": "REFUTES",
    "REFUTED": "REFUTES",
    "NEI": "NOT_ENOUGH_INFO",
    "NOT ENOUGH INFO": "NOT_ENOUGH_INFO",
    "NOT_ENOUGH_INFORMATION": "NOT_ENOUGH_INFO",
}


def normalize_label(value: object) -> str:
    """Map a raw label (name, alias or integer id) to one of :data:`LABELS`.

    Raises ``ValueError`` naming the accepted values when the label is unknown.
    """
    if isinstance(value, bool):
        raise ValueError(f"label {value!r} is a boolean, expected one of {list(LABELS)}")
    if isinstance(value, numbers.Integral) or (isinstance(value, numbers.Real) and float(value).is_integer()):
        # typeshed's numbers.Real declares no __int__, but every Real that int() takes (numpy, Fraction) has it
        index = int(cast(SupportsInt, value))
        if 0 <= index < len(LABELS):
            return LABELS[index]
        raise ValueError(f"label id {index} out of range 0..{len(LABELS) - 1}")
    if isinstance(value, str):
        key = value.strip().upper().replace("-", "_")
        if key.isdigit():
            return normalize_label(int(key))
        key = _ALIASES.get(key, _ALIASES.get(key.replace("_", " "), key))
        if key in LABEL_TO_ID:
            return key
    raise ValueError(f"unknown label {value!r}; expected one of {list(LABELS)} or 0..{len(LABELS) - 1}")
