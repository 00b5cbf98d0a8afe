"""Cost of the logistic-regression baseline's C grid: the previous way against the current one, in one run.

On the same arrays (the default split's features, or --synthetic arrays of the same shape), per
feature set:

  * old:       the previous default, 19 values of C from 1e-5 to 10 (third-decade steps), each a
               cold fit of a fresh StandardScaler + LogisticRegression pipeline;
  * warm-fine: the same 19 values fitted as `logreg_baseline` does now: scaler fitted once, C in
               ascending order, each fit warm-started from the previous coefficients;
  * new:       `logreg_baseline` with the current default `BaselineConfig().c_grid`.

C is chosen on val macro-F1 in all three; prints seconds, the speed-up against old, the chosen C
and its val and test macro-F1 (test is printed, never used to choose).
Usage: python benchmarks/baselines_grid.py [--feature-sets joint sentences joint+sentences]
       [--cache-dir .cache/evoformer] [--synthetic] [--threads N]
The real features are computed the first time (minutes on 2 cores) and read from --cache-dir after.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from evoformer.baselines import BaselineConfig, feature_set, label_ids, logreg_baseline
from evoformer.metrics import classification_metrics

OLD_GRID = [float(f"{10 ** (-5 + i / 3):.1g}") for i in range(19)]


def old_grid(x: dict[str, np.ndarray], y: dict[str, np.ndarray], config: BaselineConfig) -> tuple[float, float, float]:
    """The previous `logreg_baseline`: a cold pipeline per C; returns (C, val macro-F1, test macro-F1)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    best = None
    for c in OLD_GRID:
        model = make_pipeline(
            StandardScaler(),
            LogisticRegression(
                C=c, class_weight=config.class_weight, max_iter=config.max_iter, random_state=config.seed
            ),
        )
        model.fit(x["train"], y["train"])
        val = classification_metrics(y["val"], model.predict(x["val"])).macro_f1
        if best is None or val > best[1]:
            best = (c, val, model)
    assert best is not None
    c, val, model = best
    return c, val, classification_metrics(y["test"], model.predict(x["test"])).macro_f1


def new_grid(x, y, config: BaselineConfig, name: str) -> tuple[float, float, float]:
    result = logreg_baseline(x["train"], y["train"], x["val"], y["val"], x["test"], y["test"], config, features=name)
    c = float(result.detail.split("C=")[1].split()[0])
    return c, result.val.macro_f1, result.test.macro_f1


def real_arrays(names: list[str], cache_dir: str) -> dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    from evoformer.data import DataSourceConfig, SplitConfig, load_pairs, make_splits
    from evoformer.features import EncoderConfig, featurize_splits
    from evoformer.features.sentences import embed_sentences

    loaded = load_pairs(DataSourceConfig())
    splits = make_splits(loaded.frame, SplitConfig(), loaded.report.source)
    features = featurize_splits(splits.frames, splits.fingerprints, EncoderConfig(), cache_dir, progress=False)
    sentences = embed_sentences(splits.frames, splits.fingerprints, EncoderConfig(), cache_dir)
    y = {s: label_ids(frame["label"]) for s, frame in splits.frames.items()}
    return {name: ({s: feature_set(name, str(features.path), str(sentences.path), s) for s in y}, y) for name in names}


def synthetic_arrays(names: list[str]) -> dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """Rows of the default split's sizes and label mix, 1,536 columns per part, a weak class signal."""
    rng = np.random.default_rng(0)
    sizes, mix = {"train": 6145, "val": 765, "test": 765}, [0.25, 0.1, 0.65]
    out = {}
    for name in names:
        dim = 3072 if name == "joint+sentences" else 1536
        means = rng.normal(size=(3, dim)) * 0.05
        y = {s: rng.choice(3, size=n, p=mix) for s, n in sizes.items()}
        x = {s: (means[y[s]] + rng.normal(size=(len(y[s]), dim))).astype(np.float32) for s in sizes}
        out[name] = (x, y)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feature-sets", nargs="+", default=["joint", "sentences", "joint+sentences"])
    parser.add_argument("--cache-dir", default=os.environ.get("EVOFORMER_CACHE") or ".cache/evoformer")
    parser.add_argument("--synthetic", action="store_true", help="random arrays of the real shape instead")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: as the library decides)")
    args = parser.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)

    data = synthetic_arrays(args.feature_sets) if args.synthetic else real_arrays(args.feature_sets, args.cache_dir)
    config = BaselineConfig()
    fine = config.model_copy(update={"c_grid": OLD_GRID})
    print(f"features: {'synthetic' if args.synthetic else 'real, default split'}; old grid {len(OLD_GRID)} values")
    print(f"new grid {len(config.c_grid)} values: {config.c_grid}")
    print(f"{'feature set':<16} {'variant':<10} {'seconds':>8} {'speed-up':>9} {'C':>8} {'val F1':>7} {'test F1':>8}")
    totals = {"old": 0.0, "warm-fine": 0.0, "new": 0.0}
    chosen = {}
    for name, (x, y) in data.items():
        seconds = {}
        for variant in ("old", "warm-fine", "new"):
            start = time.perf_counter()
            if variant == "old":
                c, val, test = old_grid(x, y, config)
            else:
                c, val, test = new_grid(x, y, fine if variant == "warm-fine" else config, name)
            seconds[variant] = time.perf_counter() - start
            totals[variant] += seconds[variant]
            chosen[(name, variant)] = val
            speedup = seconds["old"] / seconds[variant]
            row = f"{seconds[variant]:>8.1f} {speedup:>8.1f}x {c:>8g} {val:>7.4f} {test:>8.4f}"
            print(f"{name:<16} {variant:<10} {row}")
    print(f"{'all':<16} {'old':<10} {totals['old']:>8.1f}")
    for variant in ("warm-fine", "new"):
        print(f"{'all':<16} {variant:<10} {totals[variant]:>8.1f} {totals['old'] / totals[variant]:>8.1f}x")
    for variant in ("old", "warm-fine", "new"):
        best = max(data, key=lambda n: chosen[(n, variant)])
        print(f"chosen by val ({variant}): {best}, val macro-F1 {chosen[(best, variant)]:.4f}")


if __name__ == "__main__":
    main()
