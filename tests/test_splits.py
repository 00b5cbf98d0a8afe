"""Claim-level splits: disjoint, deterministic, stratified, fingerprinted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from evoformer.data import DataSourceConfig, DataSourceError, SplitConfig, load_pairs, make_splits
from evoformer.data.sources import normalize_claim
from evoformer.data.splits import claim_overlap, fingerprint
from evoformer.labels import LABELS


@pytest.fixture(scope="module")
def full_frame(shared_climate_fever: Path) -> pd.DataFrame:
    return load_pairs(DataSourceConfig(source=str(shared_climate_fever))).frame


def test_no_claim_in_two_splits(full_frame: pd.DataFrame) -> None:
    splits = make_splits(full_frame)
    assert splits.claim_overlap == 0
    owner: dict[str, str] = {}
    for name, frame in splits.frames.items():
        for text in frame["claim"]:
            assert owner.setdefault(normalize_claim(text), name) == name
    assert sum(len(f) for f in splits.frames.values()) == len(full_frame)
    assert set().union(*(set(f["pair_id"]) for f in splits.frames.values())) == set(full_frame["pair_id"])


def test_ratios_and_label_stratification(full_frame: pd.DataFrame) -> None:
    splits = make_splits(full_frame, SplitConfig(train=0.7, val=0.15, test=0.15, seed=3))
    total = full_frame["label"].value_counts(normalize=True)
    for name, ratio in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
        frame = splits[name]
        assert abs(len(frame) / len(full_frame) - ratio) < 0.01
        share = frame["label"].value_counts(normalize=True)
        for label in LABELS:
            assert abs(share[label] - total[label]) < 0.02, (name, label)


def test_same_seed_same_splits_other_seed_other_splits(full_frame: pd.DataFrame) -> None:
    a, b = make_splits(full_frame, SplitConfig(seed=7)), make_splits(full_frame, SplitConfig(seed=7))
    c = make_splits(full_frame, SplitConfig(seed=8))
    assert a.fingerprints == b.fingerprints
    for name in ("train", "val", "test"):
        pd.testing.assert_frame_equal(a[name], b[name])
        assert a.fingerprints[name] != c.fingerprints[name]


def test_fingerprint_tracks_content() -> None:
    frame = pd.DataFrame({"claim": ["a", "b"], "evidence": ["x", "y"], "label": ["SUPPORTS", "REFUTES"]})
    changed = frame.assign(label=["SUPPORTS", "SUPPORTS"])
    assert fingerprint(frame) == fingerprint(frame.copy())
    assert fingerprint(frame) != fingerprint(changed)
    assert len(fingerprint(frame)) == 64


def test_same_claim_text_under_two_ids_stays_together() -> None:
    rows = []
    for i in range(40):
        rows += [
            {
                "pair_id": len(rows),
                "claim_id": f"id{i}",
                "claim": f"claim {i}",
                "evidence": f"e{i}{j}",
                "label": LABELS[j % 3],
            }
            for j in range(3)
        ]
    rows.append(
        {"pair_id": len(rows), "claim_id": "other-id", "claim": "CLAIM  0", "evidence": "dup", "label": "REFUTES"}
    )
    frame = pd.DataFrame(rows)
    for seed in range(5):
        splits = make_splits(frame, SplitConfig(seed=seed))
        homes = [name for name, f in splits.frames.items() if {"id0", "other-id"} & set(f["claim_id"])]
        assert len(homes) == 1


def test_overlap_detector_and_config_validation() -> None:
    a = pd.DataFrame({"claim_id": ["1"], "claim": ["Sea level rises"]})
    b = pd.DataFrame({"claim_id": ["2"], "claim": ["sea  level rises"]})
    assert claim_overlap({"train": a, "test": b}) == 1
    assert claim_overlap({"train": a, "test": b.assign(claim=["other"])}) == 0
    with pytest.raises(ValidationError, match="sum to 1"):
        SplitConfig(train=0.8, val=0.1, test=0.2)


def test_too_few_claims_is_a_clear_error() -> None:
    frame = pd.DataFrame(
        {
            "pair_id": [0, 1],
            "claim_id": ["a", "b"],
            "claim": ["a", "b"],
            "evidence": ["x", "y"],
            "label": ["SUPPORTS", "REFUTES"],
        }
    )
    with pytest.raises(
        DataSourceError,
        match=r"^few\.jsonl: 2 claims are too few for split ratios 0\.8/0\.1/0\.1 "
        r"\(at least 10 needed\)$",
    ):
        make_splits(frame, source="few.jsonl")


def test_one_label_is_a_clear_error() -> None:
    frame = pd.DataFrame(
        {
            "pair_id": range(20),
            "claim_id": [str(i) for i in range(20)],
            "claim": [f"c{i}" for i in range(20)],
            "evidence": ["x"] * 20,
            "label": ["SUPPORTS"] * 20,
        }
    )
    with pytest.raises(DataSourceError, match=r"^one\.csv: needs at least two labels .* found SUPPORTS: 20 pairs$"):
        make_splits(frame, source="one.csv")


def test_split_sizes_on_default_config(full_frame: pd.DataFrame) -> None:
    summary = make_splits(full_frame).summary()
    assert summary["train"]["claims"] + summary["val"]["claims"] + summary["test"]["claims"] == 1535
    assert np.isclose(summary["test"]["pairs"] / 7675, 0.1, atol=0.01)
