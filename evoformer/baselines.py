"""Reference points every candidate is judged against: majority class and logistic regression."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel

from evoformer.config.data import BaselineConfig  # noqa: F401  (declared with the other settings)
from evoformer.labels import LABEL_TO_ID
from evoformer.metrics import ClassificationMetrics, classification_metrics
from evoformer.progress import Progress


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
    features: str = "joint",
    progress: Progress | None = None,
) -> BaselineResult:
    """Standardised logistic regression on pooled frozen features; C picked on val only.

    The C grid is fitted in ascending order along one regularisation path: the scaler is fitted
    once on train, and each fit starts from the previous C's coefficients (lbfgs ``warm_start``).
    The objective is strictly convex, so every fit reaches the same optimum as a cold fit (to the
    solver's tolerance) in fewer iterations. Ties on val macro-F1 go to the smaller C.
    ``features`` names the feature set, for the detail string (see :func:`run_baselines`);
    ``progress``, if given, receives one line per fit: C, its place in the grid, val macro-F1, seconds.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression  # imported here: slow to import, rarely needed
    from sklearn.preprocessing import StandardScaler

    config = config or BaselineConfig()
    grid = sorted(set(config.c_grid))
    if not grid:
        raise ValueError("baselines.c_grid is empty: no logistic regression to fit")
    scaler = StandardScaler().fit(x_train)
    train, val_x = scaler.transform(x_train), scaler.transform(x_val)
    model = LogisticRegression(
        class_weight=config.class_weight, max_iter=config.max_iter, random_state=config.seed, warm_start=True
    )
    best: tuple[float, ClassificationMetrics, np.ndarray, np.ndarray] | None = None
    for i, c in enumerate(grid, 1):
        started = time.perf_counter()
        model.set_params(C=c)
        with warnings.catch_warnings():
            # a large C may stop at max_iter: still a point of the grid, judged on val; the line says so
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(train, y_train)
        capped = ", stopped at max_iter" if int(np.max(model.n_iter_)) >= config.max_iter else ""
        val = classification_metrics(y_val, model.predict(val_x))
        if best is None or val.macro_f1 > best[1].macro_f1:
            best = (c, val, model.coef_.copy(), model.intercept_.copy())
        if progress is not None:
            progress(
                f"logreg {features} C={c:g} ({i}/{len(grid)}): val macro-F1 {val.macro_f1:.3f}, "
                f"{time.perf_counter() - started:.1f} s{capped}"
            )
    assert best is not None  # grid is not empty
    c, val, coef, intercept = best
    model.coef_, model.intercept_ = coef, intercept
    return BaselineResult(
        name="logreg",
        detail=f"{features} features [u, v, |u-v|, u*v], C={c} (chosen on val)",
        val=val,
        test=classification_metrics(y_test, model.predict(scaler.transform(x_test))),
    )


def label_ids(labels) -> np.ndarray:
    """Integer ids of label names."""
    return np.array([LABEL_TO_ID[label] for label in labels], dtype=np.int64)


def feature_set(name: str, features_path: str, sentences_path: str | None, split: str) -> np.ndarray:
    """Rows of one split for a named feature set, each part ``[u, v, |u-v|, u*v]``.

    ``joint``: claim and evidence segments of the joint pair encoding
    (:meth:`~evoformer.features.store.SplitFeatures.pair_pooled`); ``sentences``: separate sentence
    embeddings (:func:`~evoformer.features.sentences.load_sentence_pairs`); ``joint+sentences``: both.
    """
    from evoformer.features.sentences import load_sentence_pairs  # imported here: the GUI reads baselines without them
    from evoformer.features.store import load_split_features

    parts = []
    if name in ("joint", "joint+sentences"):
        parts.append(load_split_features(features_path, split).pair_pooled())
    if name in ("sentences", "joint+sentences"):
        if sentences_path is None:
            raise ValueError(f"feature set {name!r} needs sentence embeddings")
        parts.append(load_sentence_pairs(sentences_path, split))
    return np.hstack(parts)


def run_baselines(
    features_path: str,
    labels: dict[str, list[str]],
    config: BaselineConfig | None = None,
    sentences_path: str | None = None,
    progress: Progress | None = None,
) -> dict[str, BaselineResult]:
    """Majority and logistic-regression baselines; labels are held by the caller.

    The logistic regression is fitted on every configured feature set (those needing sentence
    embeddings only when ``sentences_path`` is given); the one with the best val macro-F1 is kept.
    ``progress`` receives one line per fit (see :func:`logreg_baseline`).
    """
    config = config or BaselineConfig()
    y = {name: label_ids(values) for name, values in labels.items()}
    names = [n for n in config.feature_sets if sentences_path is not None or n == "joint"]
    if not names:
        raise ValueError("no feature set to fit: the sentence feature sets need sentence embeddings")
    best: BaselineResult | None = None
    for name in names:
        x = {split: feature_set(name, features_path, sentences_path, split) for split in ("train", "val", "test")}
        for split in x:
            if len(x[split]) != len(y[split]):
                raise ValueError(f"{split}: {len(x[split])} feature rows but {len(y[split])} labels")
        result = logreg_baseline(
            x["train"], y["train"], x["val"], y["val"], x["test"], y["test"], config, features=name, progress=progress
        )
        if best is None or result.val.macro_f1 > best.val.macro_f1:
            best = result
    assert best is not None  # names is not empty
    return {"majority": majority_baseline(y["train"], y["val"], y["test"]), "logreg": best}


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


REPORTED_SPLITS = ("val", "test")


def macro_f1_table(
    baselines: Mapping[str, Any], splits: tuple[str, ...] = REPORTED_SPLITS
) -> dict[str, dict[str, float]]:
    """``{name: {split: macro-F1}}``: the one projection of baselines every summary, table and
    report shows. ``baselines`` may hold :class:`BaselineResult` objects, their summary form
    (``{split: {"macro_f1": ...}, ...}``) or an already projected table (``{split: f1}``); an
    entry that lacks a split is left out."""
    table = {}
    for name, result in baselines.items():
        try:
            table[name] = {split: float(_macro_f1(result, split)) for split in splits}
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return table


def _macro_f1(result: Any, split: str) -> Any:
    if isinstance(result, BaselineResult):
        return getattr(result, split).macro_f1
    value = result[split]
    return value["macro_f1"] if isinstance(value, Mapping) else value
