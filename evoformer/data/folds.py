"""Cross-validation folds over the selection pool (train + val): claim-grouped, label-stratified.

The pool is the train split's rows followed by the val split's rows, in split-table order; a fold
is two index sets into it. Features are never copied or re-encoded for a fold: the sandbox opens
the train and val feature splits and reads the rows the fold names. Test is never in the pool.

``folds=1`` is not a fold of the pool: it is the run's own train/val split, i.e. what evolution
did before cross-validation (``Fold.index_sets`` is then None and nothing changes in the sandbox).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evoformer.data.errors import DataSourceError
from evoformer.data.splits import assign_groups, claim_groups
from evoformer.labels import LABELS
from evoformer.layout import RunLayout


@dataclass(frozen=True, eq=False)
class Fold:
    """Fold ``number`` of ``count``: which pool rows train and which validate."""

    number: int
    count: int
    train_index: np.ndarray | None = field(default=None, repr=False)
    val_index: np.ndarray | None = field(default=None, repr=False)

    @property
    def index_sets(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(train_index, val_index)`` into the pool; None for the run's own split (``count == 1``)."""
        if self.train_index is None or self.val_index is None:
            return None
        return self.train_index, self.val_index

    def digest(self) -> str:
        """Identifies the fold's rows (part of a training's cache key); '' for the run's own split."""
        sets = self.index_sets
        if sets is None:
            return ""
        digest = hashlib.sha256(f"{self.number}/{self.count}".encode())
        for index in sets:
            digest.update(np.ascontiguousarray(index, dtype=np.int64).tobytes())
            digest.update(b"|")
        return digest.hexdigest()[:24]

    def labels(self, labels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The fold's train / val labels from the run's ``{train, val, test}`` label ids (test unchanged)."""
        sets = self.index_sets
        if sets is None:
            return labels
        pool = np.concatenate([np.asarray(labels["train"]), np.asarray(labels["val"])])
        return {"train": pool[sets[0]], "val": pool[sets[1]], "test": np.asarray(labels["test"])}


def own_split() -> Fold:
    """The run's train/val split as the only fold."""
    return Fold(number=0, count=1)


def make_folds(train: pd.DataFrame, val: pd.DataFrame, count: int, seed: int = 0) -> list[Fold]:
    """``count`` folds over ``train`` then ``val`` rows; all pairs of a claim (by id or by
    normalised text) validate in the same fold, and each fold's label mix is close to the pool's.

    ``count == 1`` gives :func:`own_split`. Raises :class:`DataSourceError` when the pool has fewer
    claim groups than folds."""
    if count < 1:
        raise ValueError("folds must be at least 1")
    if count == 1:
        return [own_split()]
    pool = pd.concat([train, val], ignore_index=True)
    group_of = claim_groups(pool)
    group_ids = np.unique(group_of)
    if len(group_ids) < count:
        raise DataSourceError(f"{len(group_ids)} claims in train + val are too few for {count} folds")
    label_index = {label: i for i, label in enumerate(LABELS)}
    counts = np.zeros((len(group_ids), len(LABELS)))
    np.add.at(counts, (np.searchsorted(group_ids, group_of), pool["label"].map(label_index).to_numpy()), 1)
    assignment = assign_groups(counts, np.full(count, 1.0 / count), np.random.default_rng(seed))
    fold_of_row = assignment[np.searchsorted(group_ids, group_of)]
    rows = np.arange(len(pool))
    folds = []
    for number in range(count):
        held_out = fold_of_row == number
        if not held_out.any():
            raise DataSourceError(f"fold {number} of {count} is empty: train + val are too small for {count} folds")
        folds.append(Fold(number, count, train_index=rows[~held_out], val_index=rows[held_out]))
    return folds


def save_folds(path: Path, folds: list[Fold]) -> None:
    """Write cross-validation folds (``count > 1``) to an ``.npz`` the orchestrator owns."""
    arrays = {}
    for fold in folds:
        sets = fold.index_sets
        if sets is not None:
            arrays[f"train_{fold.number}"], arrays[f"val_{fold.number}"] = sets
    if arrays:
        path.parent.mkdir(parents=True, exist_ok=True)
        save: Any = np.savez  # its stubs read ``**arrays`` as its keyword options
        save(path, **arrays)


def load_folds(path: Path) -> list[Fold]:
    """The folds :func:`save_folds` wrote; empty when there is no file (a run on its own split)."""
    if not path.is_file():
        return []
    with np.load(path) as saved:
        count = len([name for name in saved.files if name.startswith("train_")])
        return [Fold(n, count, train_index=saved[f"train_{n}"], val_index=saved[f"val_{n}"]) for n in range(count)]


def run_folds(layout: RunLayout, count: int, seed: int = 0) -> list[Fold]:
    """The folds of the run in ``layout``, from its train and val split tables (orchestrator side)."""
    columns = ["claim_id", "claim", "label"]
    frames = [pd.read_parquet(layout.split_table(name), columns=columns) for name in ("train", "val")]
    return make_folds(frames[0], frames[1], count, seed)
