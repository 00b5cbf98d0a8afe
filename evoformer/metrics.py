"""Classification metrics reported everywhere: macro-F1 next to accuracy, never alone."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel
from sklearn.metrics import accuracy_score, f1_score

from evoformer.labels import LABELS


class ClassificationMetrics(BaseModel):
    """Quality of predictions against held labels."""

    macro_f1: float
    weighted_f1: float
    accuracy: float
    per_class_f1: dict[str, float]
    support: int


def classification_metrics(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> ClassificationMetrics:
    """Metrics over integer labels indexing :data:`~evoformer.labels.LABELS`."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    if len(y_true) == 0:
        raise ValueError("no labels to score")
    ids = list(range(len(LABELS)))
    per_class = f1_score(y_true, y_pred, labels=ids, average=None, zero_division=0)
    return ClassificationMetrics(
        macro_f1=float(f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0)),
        weighted_f1=float(f1_score(y_true, y_pred, labels=ids, average="weighted", zero_division=0)),
        accuracy=float(accuracy_score(y_true, y_pred)),
        per_class_f1={label: float(v) for label, v in zip(LABELS, per_class)},
        support=int(len(y_true)),
    )
