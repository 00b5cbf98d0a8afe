"""Acceptance of the synthetic data flow on the full shared data (marker ``slow``: `make test-slow`):
every synthetic-seed file imported, a count for each gate, nothing kept near val or test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evoformer.features.sentences import embed_texts

pytestmark = pytest.mark.slow
SEED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "synthetic-seed"


def test_synth_on_every_seed_file_and_the_full_release(shared_climate_fever: Path, tmp_path: Path) -> None:
    if not SEED.is_dir():
        pytest.skip(f"shared synthetic seed not found at {SEED}")
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL")}
    cache = tmp_path / "cache"
    args = [
        str(Path(sys.executable).with_name("evoformer")),
        "synth",
        "--from-file",
        str(SEED),
        "--source",
        str(shared_climate_fever),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--cache-dir",
        str(cache),
        "--run-id",
        "full",
        "--json",
    ]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)

    assert len(report["imports"]["files"]) == 6
    gates = {g["gate"]: g for g in report["gates"]}
    assert list(gates) == [
        "schema",
        "exact_duplicates",
        "decontamination",
        "near_duplicates",
        "label_verification",
        "class_balance",
    ]
    previous = gates["schema"]["kept"]
    for name, gate in list(gates.items())[1:]:
        assert gate["input"] == previous and gate["kept"] == gate["input"] - gate["dropped"], name
        previous = gate["kept"]
    assert gates["schema"]["input"] == report["imports"]["rows_read"] and report["kept"] == previous
    assert gates["decontamination"]["dropped"] > 0 and gates["exact_duplicates"]["dropped"] > 0

    kept = pd.read_parquet(report["files"]["synthetic.parquet"])
    from evoformer.data import DataSourceConfig, load_pairs, make_splits

    splits = make_splits(load_pairs(DataSourceConfig(source=str(shared_climate_fever))).frame)
    assert splits.fingerprints == report["split_fingerprints"]
    held = sorted({t for name in ("val", "test") for col in ("claim", "evidence") for t in splits[name][col]})
    held_vectors = embed_texts(held, cache_dir=cache)
    kept_vectors = embed_texts(list(kept["claim"]) + list(kept["evidence"]), cache_dir=cache)
    threshold = report["gates"][2]["detail"]["threshold"]
    assert float(np.max(kept_vectors @ held_vectors.T)) < threshold
