"""Claim-level, label-stratified, seeded train/val/test splits with content fingerprints.

All pairs of one claim land in the same split; claims are identified both by id and by
normalised text, so a claim repeated under another id cannot leak. Disjointness is asserted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from evoformer.config.data import SplitConfig  # noqa: F401  (declared with the other settings)
from evoformer.data.errors import DataSourceError
from evoformer.data.sources import normalize_claim
from evoformer.labels import LABELS

SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")


class SplitLeakError(AssertionError):
    """A claim appears in more than one split."""


@dataclass
class DataSplits:
    """The three splits, their fingerprints and how many claims they share (always 0)."""

    frames: dict[str, pd.DataFrame]
    fingerprints: dict[str, str] = field(default_factory=dict)
    claim_overlap: int = 0

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.frames[name]

    def summary(self) -> dict[str, dict[str, object]]:
        """Pairs, claims and label counts per split."""
        out: dict[str, dict[str, object]] = {}
        for name, frame in self.frames.items():
            counts = frame["label"].value_counts()
            out[name] = {
                "pairs": int(len(frame)),
                "claims": int(frame["claim_id"].nunique()),
                "labels": {label: int(counts.get(label, 0)) for label in LABELS},
            }
        return out


def fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 over the ordered (claim, evidence, label) content of a split."""
    digest = hashlib.sha256()
    for claim, evidence, label in frame[["claim", "evidence", "label"]].itertuples(index=False):
        digest.update(json.dumps([claim, evidence, label], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def claim_overlap(frames: dict[str, pd.DataFrame]) -> int:
    """Number of claims (by id or by normalised text) found in more than one split."""
    seen: dict[str, set[str]] = {}
    for name, frame in frames.items():
        keys = {f"id:{c}" for c in frame["claim_id"]} | {f"text:{normalize_claim(t)}" for t in frame["claim"]}
        for key in keys:
            seen.setdefault(key, set()).add(name)
    return sum(1 for owners in seen.values() if len(owners) > 1)


def check_splittable(frame: pd.DataFrame, config: SplitConfig, source: str) -> None:
    """Refuse, before any work, data that cannot make three splits of a classification task.

    Raises :class:`DataSourceError` naming ``source`` and the counts: fewer than two labels, or too
    few claims for the smallest split ratio to get one claim.
    """
    counts = frame["label"].value_counts()
    if len(counts) < 2:
        found = ", ".join(f"{label}: {n} pairs" for label, n in counts.items()) or "no pairs"
        raise DataSourceError(f"{source}: needs at least two labels to train a classifier, found {found}")
    claims = int(frame["claim_id"].nunique())
    smallest = min(config.train, config.val, config.test)
    if claims * smallest < 1:
        needed = int(np.ceil(1 / smallest))
        raise DataSourceError(
            f"{source}: {claims} claims are too few for split ratios "
            f"{config.train:g}/{config.val:g}/{config.test:g} (at least {needed} needed)"
        )


def make_splits(frame: pd.DataFrame, config: SplitConfig | None = None, source: str = "data") -> DataSplits:
    """Split pairs by claim, stratified by label as far as the grouping allows.

    ``source`` names the data in errors (a file path, or the hub dataset).
    """
    config = config or SplitConfig()
    check_splittable(frame, config, source)
    group_of = claim_groups(frame)
    group_ids = np.unique(group_of)
    label_index = {label: i for i, label in enumerate(LABELS)}
    counts = np.zeros((len(group_ids), len(LABELS)))
    np.add.at(counts, (np.searchsorted(group_ids, group_of), frame["label"].map(label_index).to_numpy()), 1)

    assignment = assign_groups(counts, config.ratios(), np.random.default_rng(config.seed))
    split_of_row = assignment[np.searchsorted(group_ids, group_of)]
    frames = {name: frame[split_of_row == i].reset_index(drop=True) for i, name in enumerate(SPLIT_NAMES)}
    for name, part in frames.items():
        if part.empty:
            claims = frame["claim_id"].nunique()
            raise DataSourceError(f"{source}: split {name!r} is empty: {claims} claims are too few")
    overlap = claim_overlap(frames)
    if overlap:
        raise SplitLeakError(f"{overlap} claim(s) appear in more than one split")
    return DataSplits(frames=frames, fingerprints={n: fingerprint(f) for n, f in frames.items()}, claim_overlap=overlap)


def claim_groups(frame: pd.DataFrame) -> np.ndarray:
    """Union rows that share a claim id or a normalised claim text; return a group id per row."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    id_keys = ["id:" + str(c) for c in frame["claim_id"]]
    text_keys = ["text:" + normalize_claim(t) for t in frame["claim"]]
    for a, b in zip(id_keys, text_keys, strict=False):
        root_a, root_b = find(a), find(b)
        if root_a != root_b:
            parent[root_b] = root_a
    roots = [find(k) for k in id_keys]
    _, inverse = np.unique(np.array(roots), return_inverse=True)
    return inverse


def assign_groups(counts: np.ndarray, ratios: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Greedy stratified assignment: each group goes where it best closes the label-count gap.

    Groups are visited in a seeded random order, larger groups first. For each split the cost is
    the change in squared, target-normalised distance between its label counts and its target
    counts; the group goes to the cheapest split.
    """
    targets = ratios[:, None] * counts.sum(axis=0)[None, :]
    scale = np.maximum(targets, 1.0)
    current = np.zeros_like(targets)
    order = rng.permutation(len(counts))
    order = order[np.argsort(-counts[order].sum(axis=1), kind="stable")]
    assignment = np.empty(len(counts), dtype=int)
    for g in order:
        before = ((current - targets) ** 2 / scale).sum(axis=1)
        after = ((current + counts[g] - targets) ** 2 / scale).sum(axis=1)
        split = int(np.argmin(after - before))
        assignment[g] = split
        current[split] += counts[g]
    return assignment
