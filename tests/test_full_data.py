"""Acceptance on the full shared Climate-FEVER file (marker ``slow``: `make test-slow`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _run(args: list[str], env: dict[str, str]) -> tuple[dict, float]:
    start = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), time.perf_counter() - start


def test_data_flow_on_full_release(shared_climate_fever: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    exe = str(Path(sys.executable).with_name("evoformer"))
    args = [
        exe,
        "data",
        "--source",
        str(shared_climate_fever),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--no-progress",
        "--json",
    ]
    cold, cold_s = _run(args, env)
    warm, warm_s = _run(args, env)
    print(f"cold {cold_s:.1f}s, cached {warm_s:.1f}s, ratio {cold_s / warm_s:.1f}x")

    assert cold["claim_overlap"] == 0
    assert {s: cold["splits"][s]["claims"] for s in ("train", "val", "test")} == {
        "train": 1229,
        "val": 153,
        "test": 153,
    }
    assert sum(cold["splits"][s]["pairs"] for s in ("train", "val", "test")) == 7675
    majority, logreg = cold["baselines"]["majority"], cold["baselines"]["logreg"]
    assert majority["test"]["macro_f1"] == pytest.approx(0.26, abs=0.01)
    assert logreg["test"]["macro_f1"] > majority["test"]["macro_f1"] + 0.1
    assert logreg["val"]["macro_f1"] > 0.4
    assert cold["features_cached"] is False and warm["features_cached"] is True
    assert warm["baselines"] == cold["baselines"] and warm["features_path"] == cold["features_path"]
