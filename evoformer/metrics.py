"""Classification metrics reported everywhere: macro-F1 next to accuracy, never alone."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from evoformer.labels import LABELS


class ClassificationMetrics(BaseModel):
    """Quality of predictions against held labels."""

    macro_f1: float
    weighted_f1: float
    accuracy: float
    per_class_f1: dict[str, float]
    support: int


def classification_metrics(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray
) -> ClassificationMetrics:
    """Metrics over integer labels indexing :data:`~evoformer.labels.LABELS`."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    if len(y_true) == 0:
        raise ValueError("no labels to score")
    if min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= len(LABELS):
        raise ValueError(f"labels must be ids in 0..{len(LABELS) - 1}")
    k = len(LABELS)
    confusion = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)
    true_pos = np.diag(confusion).astype(float)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    denominator = predicted + actual
    per_class = np.divide(2 * true_pos, denominator, out=np.zeros(k), where=denominator > 0)  # F1 = 2TP/(2TP+FP+FN)
    return ClassificationMetrics(
        macro_f1=float(per_class.mean()),
        weighted_f1=float((per_class * actual).sum() / actual.sum()),
        accuracy=float(true_pos.sum() / len(y_true)),
        per_class_f1={label: float(v) for label, v in zip(LABELS, per_class, strict=False)},
        support=int(len(y_true)),
    )
