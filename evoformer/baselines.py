"""Reference points every candidate is judged against: majority class and logistic regression."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from evoformer.features.store import load_split_features
from evoformer.labels import LABEL_TO_ID
from evoformer.metrics import ClassificationMetrics, classification_metrics


class BaselineConfig(BaseModel):
    """Logistic-regression settings; C is chosen on val macro-F1 from ``c_grid``."""

    c_grid: list[float] = Field(default_factory=lambda: [0.0003, 0.001, 0.003, 0.01, 0.1])
    class_weight: str | None = "balanced"
    max_iter: int = 2000
    seed: int = 0


class BaselineResult(BaseModel):
    name: str
    detail: str
    val: ClassificationMetrics
    test: ClassificationMetrics


def majority_baseline(y_train: np.ndarray, y_val: np.ndarray, y_test: np.ndarray) -> BaselineResult:
    """Always predict the most frequent train label."""
    majority = int(np.bincount(y_train).argmax())
    return BaselineResult(
        name="majority",
        detail=f"always class {majority}",
        val=classification_metrics(y_val, np.full_like(y_val, majority)),
        test=classification_metrics(y_test, np.full_like(y_test, majority)),
    )


def logreg_baseline(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    config: BaselineConfig | None = None,
) -> BaselineResult:
    """Standardised logistic regression on pooled frozen features; C picked on val only.

    The features are ``[u, v, |u-v|, u*v]`` of the mean-pooled claim and evidence segments
    (see :meth:`~evoformer.features.store.SplitFeatures.pair_pooled`).
    """
    from sklearn.linear_model import LogisticRegression  # imported here: slow to import, rarely needed
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    config = config or BaselineConfig()
    best = None
    for c in config.c_grid:
        model = make_pipeline(
            StandardScaler(),
            LogisticRegression(C=c, class_weight=config.class_weight, max_iter=config.max_iter, random_state=config.seed),
        )
        model.fit(x_train, y_train)
        val = classification_metrics(y_val, model.predict(x_val))
        if best is None or val.macro_f1 > best[1].macro_f1:
            best = (c, val, model)
    c, val, model = best
    return BaselineResult(
        name="logreg",
        detail=f"pooled frozen features [u, v, |u-v|, u*v], C={c} (chosen on val)",
        val=val,
        test=classification_metrics(y_test, model.predict(x_test)),
    )


def label_ids(labels) -> np.ndarray:
    """Integer ids of label names."""
    return np.array([LABEL_TO_ID[label] for label in labels], dtype=np.int64)


def run_baselines(features_path: str, labels: dict[str, list[str]], config: BaselineConfig | None = None) -> dict[str, BaselineResult]:
    """Majority and logistic-regression baselines on a feature folder; labels are held by the caller."""
    y = {name: label_ids(values) for name, values in labels.items()}
    x = {name: load_split_features(features_path, name).pair_pooled() for name in ("train", "val", "test")}
    for name in x:
        if len(x[name]) != len(y[name]):
            raise ValueError(f"{name}: {len(x[name])} feature rows but {len(y[name])} labels")
    return {
        "majority": majority_baseline(y["train"], y["val"], y["test"]),
        "logreg": logreg_baseline(x["train"], y["train"], x["val"], y["val"], x["test"], y["test"], config),
    }


def baseline_rows(baselines: dict[str, BaselineResult]) -> list[dict[str, object]]:
    """One row per (baseline, split): macro-F1, weighted F1, accuracy and per-class F1."""
    rows: list[dict[str, object]] = []
    for result in baselines.values():
        for split in ("val", "test"):
            metrics: ClassificationMetrics = getattr(result, split)
            rows.append(
                {
                    "baseline": result.name,
                    "split": split,
                    "macro_f1": round(metrics.macro_f1, 4),
                    "weighted_f1": round(metrics.weighted_f1, 4),
                    "accuracy": round(metrics.accuracy, 4),
                    **{f"f1_{label}": round(v, 4) for label, v in metrics.per_class_f1.items()},
                }
            )
    return rows
