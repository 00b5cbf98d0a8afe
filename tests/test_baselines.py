"""Metrics and baselines on small fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from evoformer.baselines import (
    BaselineConfig,
    baseline_rows,
    label_ids,
    logreg_baseline,
    majority_baseline,
    run_baselines,
)
from evoformer.metrics import classification_metrics


def test_metrics_by_hand() -> None:
    m = classification_metrics([0, 0, 1, 2], [0, 1, 1, 2])
    # class 0: P=1, R=.5 -> F1=2/3; class 1: P=.5, R=1 -> 2/3; class 2: 1
    assert m.per_class_f1 == pytest.approx({"SUPPORTS": 2 / 3, "REFUTES": 2 / 3, "NOT_ENOUGH_INFO": 1.0})
    assert m.macro_f1 == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert m.accuracy == pytest.approx(0.75)
    assert m.weighted_f1 == pytest.approx((2 * 2 / 3 + 2 / 3 + 1) / 4)
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [0])
    with pytest.raises(ValueError):
        classification_metrics([0, 3], [0, 1])


def test_metrics_agree_with_sklearn() -> None:
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    y_pred[:5] = 1  # make sure every class is predicted
    m = classification_metrics(y_true, y_pred)
    assert m.macro_f1 == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert m.weighted_f1 == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
    assert m.accuracy == pytest.approx(accuracy_score(y_true, y_pred))
    none_predicted = classification_metrics([0, 1, 2], [0, 0, 0])
    assert none_predicted.per_class_f1["REFUTES"] == 0.0


def test_majority_baseline_predicts_the_train_mode() -> None:
    y_train = np.array([2, 2, 2, 0, 1])
    y_eval = np.array([2, 2, 0, 1])
    result = majority_baseline(y_train, y_eval, y_eval)
    # only class 2 is predicted: F1_2 = 2*0.5*1/(1.5) = 2/3, others 0
    assert result.val.macro_f1 == pytest.approx((2 / 3) / 3)
    assert result.test.accuracy == pytest.approx(0.5)


def test_logreg_learns_separable_features() -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 16)) * 3

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 3, n)
        return centers[y] + rng.normal(size=(n, 16)), y

    (xt, yt), (xv, yv), (xs, ys) = sample(300), sample(90), sample(90)
    logreg = logreg_baseline(xt, yt, xv, yv, xs, ys, BaselineConfig())
    majority = majority_baseline(yt, yv, ys)
    assert logreg.test.macro_f1 > 0.9 > majority.test.macro_f1


def test_baselines_on_real_small_features(small_features, small_splits) -> None:
    labels = {name: frame["label"].tolist() for name, frame in small_splits.frames.items()}
    results = run_baselines(str(small_features.path), labels, BaselineConfig(c_grid=[0.01]))
    assert set(results) == {"majority", "logreg"}
    for result in results.values():
        for split in ("val", "test"):
            metrics = getattr(result, split)
            assert metrics.support == len(labels[split])
            assert set(metrics.per_class_f1) == {"SUPPORTS", "REFUTES", "NOT_ENOUGH_INFO"}
    rows = baseline_rows(results)
    assert [(r["baseline"], r["split"]) for r in rows] == [
        ("majority", "val"),
        ("majority", "test"),
        ("logreg", "val"),
        ("logreg", "test"),
    ]
    with pytest.raises(ValueError, match="feature rows"):
        run_baselines(str(small_features.path), dict(labels, val=labels["val"][:-1]))


def test_label_ids() -> None:
    assert label_ids(["REFUTES", "SUPPORTS", "NOT_ENOUGH_INFO"]).tolist() == [1, 0, 2]


def test_logreg_feature_set_is_chosen_on_val(small_features, small_sentences, small_splits) -> None:
    from evoformer.baselines import feature_set

    labels = {name: frame["label"].tolist() for name, frame in small_splits.frames.items()}
    y = {name: label_ids(values) for name, values in labels.items()}
    config = BaselineConfig(c_grid=[0.01])
    chosen = run_baselines(str(small_features.path), labels, config, str(small_sentences.path))["logreg"]
    val = {}
    for name in ("joint", "sentences", "joint+sentences"):
        x = {
            s: feature_set(name, str(small_features.path), str(small_sentences.path), s)
            for s in ("train", "val", "test")
        }
        assert len(x["val"]) == len(labels["val"])
        val[name] = logreg_baseline(
            x["train"], y["train"], x["val"], y["val"], x["test"], y["test"], config
        ).val.macro_f1
    best = max(val, key=val.get)
    assert chosen.detail.startswith(f"{best} features") and chosen.val.macro_f1 == pytest.approx(val[best])
    joint_only = run_baselines(str(small_features.path), labels, config)["logreg"]
    assert joint_only.detail.startswith("joint features") and joint_only.val.macro_f1 == pytest.approx(val["joint"])
    with pytest.raises(ValueError, match="needs sentence embeddings"):
        feature_set("sentences", str(small_features.path), None, "val")
