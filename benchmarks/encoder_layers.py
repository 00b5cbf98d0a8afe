"""Which hidden layers should the frozen token states be? The study behind `EncoderConfig.layers`.

For each N in --layers, the train and val splits (never test) are featurized with token states =
mean of the encoder's last N hidden layers. The pair features [u, v, |u-v|, u*v] of the true claim
and evidence segments are then scored by claim-grouped K-fold cross-validation over train+val
(claims never straddle folds) with two probes:

  * logreg: standardised, class-balanced logistic regression, C chosen by mean CV macro-F1;
  * mlp:    the `segment_pair_mlp` seed's head (LayerNorm, dropout, 256 GELU, dropout), AdamW
            with class-weighted cross-entropy, early stopping on a claim-grouped slice of the
            fold's training part; --mlp-seeds seeds per fold.

Prints mean CV macro-F1 ± its standard error per N and probe. Single-split val macro-F1 on 765
pairs moves by about ±0.02 between train seeds, which is why this uses cross-validation.
Usage: python benchmarks/encoder_layers.py [--layers 1 2 3 4 6] [--folds 5] [--mlp-seeds 2]
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch

from evoformer.baselines import label_ids
from evoformer.data import DataSourceConfig, load_pairs
from evoformer.data.splits import SplitConfig, make_splits
from evoformer.features import EncoderConfig, featurize_splits, load_split_features


def pair_features(splits, layers: int, cache_dir: str) -> np.ndarray:
    """[u, v, |u-v|, u*v] for train then val, from token states averaged over the last ``layers``."""
    frames = {name: splits[name] for name in ("train", "val")}
    fingerprints = {name: splits.fingerprints[name] for name in frames}
    result = featurize_splits(frames, fingerprints, EncoderConfig(layers=layers), cache_dir, progress=False)
    return np.vstack([load_split_features(result.path, name).pair_pooled() for name in frames])


def logreg_cv(x: np.ndarray, y: np.ndarray, folds, c_grid: list[float]) -> list[float]:
    """Per-fold macro-F1 at the C with the best mean over folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = {}
    for c in c_grid:
        scores[c] = []
        for train, held in folds:
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=1000))
            model.fit(x[train], y[train])
            scores[c].append(f1_score(y[held], model.predict(x[held]), average="macro"))
    return max(scores.values(), key=np.mean)


def mlp_fold(x: torch.Tensor, y: np.ndarray, train: np.ndarray, stop: np.ndarray, held: np.ndarray, seed: int) -> float:
    """Held-out macro-F1 of the MLP probe at its best epoch on ``stop`` (patience 3, 12 epochs)."""
    from sklearn.metrics import f1_score

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dim, classes = x.shape[1], int(y.max()) + 1
    model = torch.nn.Sequential(
        torch.nn.Dropout(0.1),
        torch.nn.LayerNorm(dim),
        torch.nn.Dropout(0.25),
        torch.nn.Linear(dim, 256),
        torch.nn.GELU(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(256, classes),
    )
    counts = np.bincount(y[train], minlength=classes)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(len(train) / (classes * counts), dtype=torch.float32))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    targets = torch.from_numpy(y)
    best, best_held, waited = -1.0, 0.0, 0
    for _ in range(12):
        model.train()
        for batch in np.array_split(rng.permutation(train), max(1, len(train) // 64)):
            loss = loss_fn(model(x[batch]), targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            on_stop = f1_score(y[stop], model(x[stop]).argmax(1).numpy(), average="macro")
            on_held = f1_score(y[held], model(x[held]).argmax(1).numpy(), average="macro")
        if on_stop > best:
            best, best_held, waited = on_stop, on_held, 0
        else:
            waited += 1
            if waited >= 3:
                break
    return best_held


def main() -> None:
    from sklearn.model_selection import GroupKFold

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=None, help="data source (default: the shared Climate-FEVER file)")
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3, 4, 6])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--mlp-seeds", type=int, default=2)
    parser.add_argument("--cache-dir", default=None, help="feature cache (default: a temporary folder)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    splits = make_splits(load_pairs(DataSourceConfig(source=args.source)).frame, SplitConfig())
    y = np.concatenate([label_ids(splits[name]["label"]) for name in ("train", "val")])
    groups = np.concatenate([splits["train"]["claim_id"].to_numpy(), splits["val"]["claim_id"].to_numpy()])
    folds = list(GroupKFold(n_splits=args.folds).split(y, y, groups))
    c_grid = [3e-5, 1e-4, 3e-4, 1e-3, 3e-3]
    print(f"train+val: {len(y)} pairs, {len(set(groups))} claims, {args.folds} claim-grouped folds")
    print(f"{'last N layers':>13} | {'logreg CV macro-F1':>20} | {'mlp CV macro-F1':>20}")
    with tempfile.TemporaryDirectory() as tmp:
        for layers in args.layers:
            x = pair_features(splits, layers, args.cache_dir or tmp)
            logreg = logreg_cv(x, y, folds, c_grid)
            features, mlp = torch.from_numpy(x.astype(np.float32)), []
            for train, held in folds:
                inner, stop = next(GroupKFold(n_splits=8).split(train, train, groups[train]))
                mlp += [mlp_fold(features, y, train[inner], train[stop], held, seed) for seed in range(args.mlp_seeds)]
            row = [f"{np.mean(s):.4f} ± {np.std(s) / np.sqrt(len(s)):.4f}" for s in (logreg, mlp)]
            print(f"{layers:>13} | {row[0]:>20} | {row[1]:>20}", flush=True)


if __name__ == "__main__":
    main()
