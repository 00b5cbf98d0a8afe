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


def _labels_of_a_cold_fit(x_train, y_train, x, c: float) -> np.ndarray:
    """Predictions of an independent cold fit at C=c: labels for which C=c is right by construction."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    config = BaselineConfig()
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=c, class_weight=config.class_weight, max_iter=config.max_iter, random_state=config.seed),
    )
    return model.fit(x_train, y_train).predict(x)


def test_warm_started_grid_chooses_c_on_val_and_reports_each_fit() -> None:
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(3, 20)) * 0.4  # weak signal: predictions change with C
    y_train = rng.integers(0, 3, 300)
    x_train = centers[y_train] + rng.normal(size=(300, 20))
    x_val, x_test = rng.normal(size=(200, 20)), rng.normal(size=(200, 20))
    # val agrees with C=0.01 exactly, test with C=1: choosing on val must give 0.01, on test 1
    y_val = _labels_of_a_cold_fit(x_train, y_train, x_val, 0.01)
    y_test = _labels_of_a_cold_fit(x_train, y_train, x_test, 1.0)
    assert (y_val != _labels_of_a_cold_fit(x_train, y_train, x_val, 1.0)).sum() > 10
    assert (y_val != _labels_of_a_cold_fit(x_train, y_train, x_val, 1e-4)).sum() > 10
    lines: list[str] = []
    config = BaselineConfig(c_grid=[1.0, 1e-4, 0.01])  # unsorted: fitted in ascending order
    result = logreg_baseline(x_train, y_train, x_val, y_val, x_test, y_test, config, "demo", progress=lines.append)
    assert "C=0.01 (chosen on val)" in result.detail
    assert result.val.macro_f1 > 0.97 > result.test.macro_f1
    assert [line.split(":")[0] for line in lines] == [
        "logreg demo C=0.0001 (1/3)",
        "logreg demo C=0.01 (2/3)",
        "logreg demo C=1 (3/3)",
    ]
    assert all(" s" in line and "val macro-F1 " in line for line in lines)


def test_run_baselines_reports_one_line_per_fit(small_features, small_sentences, small_splits) -> None:
    labels = {name: frame["label"].tolist() for name, frame in small_splits.frames.items()}
    config = BaselineConfig(c_grid=[0.01, 0.001])
    lines: list[str] = []
    run_baselines(str(small_features.path), labels, config, str(small_sentences.path), progress=lines.append)
    assert [line.split(":")[0] for line in lines] == [
        f"logreg {name} C={c} ({i}/2)"
        for name in ("joint", "sentences", "joint+sentences")
        for i, c in enumerate(("0.001", "0.01"), 1)
    ]
    lines.clear()
    run_baselines(str(small_features.path), labels, config, progress=lines.append)  # no sentences: joint only
    assert len(lines) == 2 and all(line.startswith("logreg joint ") for line in lines)


def test_sentence_embeddings_are_needed_only_by_the_sentence_feature_sets() -> None:
    from evoformer.config.data import BaselineConfig

    assert BaselineConfig().needs_sentences()
    assert not BaselineConfig(feature_sets=["joint"]).needs_sentences()
    assert BaselineConfig(feature_sets=["joint+sentences"]).needs_sentences()
