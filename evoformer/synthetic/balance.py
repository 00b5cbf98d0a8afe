"""Class-balance targets for the synthetic examples kept."""

from __future__ import annotations

import numpy as np

from evoformer.config.synthesize import BalanceConfig  # noqa: F401  (declared with the other settings)
from evoformer.labels import LABELS


def balance_targets(counts: dict[str, int], train_counts: dict[str, int], config: BalanceConfig) -> dict[str, int]:
    """How many examples of each label to keep, given what is there and the real train counts."""
    have = {label: int(counts.get(label, 0)) for label in LABELS}
    if config.mode == "none":
        target = dict(have)
    elif config.mode == "fill_minority":
        top = max(train_counts.get(label, 0) for label in LABELS)
        target = {label: min(have[label], max(0, top - train_counts.get(label, 0))) for label in LABELS}
    elif config.mode == "equal":
        present = [have[label] for label in LABELS if have[label] > 0]
        floor = min(present) if present else 0
        target = {label: min(have[label], floor) for label in LABELS}
    else:  # match_train: the largest set with train's shares that fits in what is there
        total_train = sum(train_counts.get(label, 0) for label in LABELS) or 1
        shares = {label: train_counts.get(label, 0) / total_train for label in LABELS}
        scale = min((have[label] / shares[label] for label in LABELS if shares[label] > 0), default=0.0)
        target = {label: min(have[label], int(scale * shares[label])) for label in LABELS}
    if config.max_fraction_of_train is not None:
        cap = int(config.max_fraction_of_train * sum(train_counts.values()))
        total = sum(target.values())
        if total > cap:
            target = {label: int(n * cap / total) for label, n in target.items()}
    return target


def choose_rows(labels: list[str], targets: dict[str, int], seed: int) -> np.ndarray:
    """Boolean mask of the rows to keep: ``targets[label]`` rows of each label, drawn at random (seeded)."""
    labels_arr = np.asarray(labels, dtype=object)
    keep = np.zeros(len(labels), dtype=bool)
    rng = np.random.default_rng(seed)
    for label in LABELS:
        rows = np.flatnonzero(labels_arr == label)
        take = min(len(rows), targets.get(label, 0))
        keep[rng.choice(rows, size=take, replace=False) if take < len(rows) else rows] = True
    return keep
