"""The prepare_data flow under Prefect's test harness: summary, artifacts, cached featurize."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from evoformer.baselines import BaselineConfig
from evoformer.data import DataSourceConfig
from evoformer.runs import StorageConfig

pytestmark = pytest.mark.integration  # trains in the sandbox, runs flows or starts servers


def _params(source: Path, runs: Path, cache: Path, run_id: str):
    from flows.data import PrepareDataParams

    return PrepareDataParams(
        data=DataSourceConfig(source=str(source)),
        baselines=BaselineConfig(c_grid=[0.01]),
        storage=StorageConfig(runs_dir=str(runs), cache_dir=str(cache), run_id=run_id),
        progress=False,
    )


def _artifact_data(key: str, flow_run_id) -> list[dict]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
            )
        )
    assert len(artifacts) == 1, f"expected one {key!r} artifact for the flow run"
    data = artifacts[0].data
    return json.loads(data) if isinstance(data, str) else data


def test_prepare_data_flow(prefect_harness, small_climate_fever: Path, tmp_path: Path) -> None:
    from flows.data import prepare_data

    cache = tmp_path / "cache"
    state = prepare_data(_params(small_climate_fever, tmp_path / "runs", cache, "first"), return_state=True)
    assert state.is_completed()
    summary = state.result()
    run_dir = tmp_path / "runs" / "first"
    assert json.loads((run_dir / "summary.json").read_text()) == json.loads(json.dumps(summary, default=str))
    assert summary["claim_overlap"] == 0
    assert summary["features_cached"] is False and summary["sentences_cached"] is False
    assert Path(summary["features_path"]).is_dir()
    for split in ("train", "val", "test"):
        frame = pd.read_parquet(run_dir / "data" / f"{split}.parquet")
        assert len(frame) == summary["splits"][split]["pairs"]
        assert frame["claim_id"].nunique() == summary["splits"][split]["claims"]
    for name in ("majority", "logreg"):
        for split in ("val", "test"):
            assert 0.0 <= summary["baselines"][name][split]["macro_f1"] <= 1.0

    flow_run_id = state.state_details.flow_run_id
    split_table = _artifact_data("data-splits", flow_run_id)
    assert {row["split"]: row["pairs"] for row in split_table} == {
        s: summary["splits"][s]["pairs"] for s in ("train", "val", "test")
    }
    baseline_table = _artifact_data("data-baselines", flow_run_id)
    assert {(r["baseline"], r["split"]) for r in baseline_table} == {
        (b, s) for b in ("majority", "logreg") for s in ("val", "test")
    }

    second = prepare_data(_params(small_climate_fever, tmp_path / "runs", cache, "second"), return_state=True).result()
    assert second["features_cached"] is True and second["sentences_cached"] is True
    assert second["sentences_path"] == summary["sentences_path"]
    assert second["features_path"] == summary["features_path"]
    assert second["baselines"] == summary["baselines"]
    assert second["fingerprints"] == summary["fingerprints"]


def test_prepare_data_recomputes_when_cache_folder_was_deleted(
    prefect_harness, small_climate_fever: Path, tmp_path: Path
) -> None:
    import shutil

    from flows.data import prepare_data

    cache = tmp_path / "cache"
    first = prepare_data(_params(small_climate_fever, tmp_path / "runs", cache, "a"))
    shutil.rmtree(first["features_path"])
    again = prepare_data(_params(small_climate_fever, tmp_path / "runs", cache, "b"))
    assert again["features_cached"] is False
    assert (Path(again["features_path"]) / "manifest.json").is_file()


def test_malformed_source_fails_the_flow_with_location(prefect_harness, tmp_path: Path) -> None:
    from evoformer.data import MalformedRowError
    from flows.data import prepare_data

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"claim_id": "1", "claim": "x", "evidences": [{"evidence": "e", "evidence_label": "SUPPORTS"}]}\n{oops\n'
    )
    with pytest.raises(MalformedRowError, match="bad.jsonl:2"):
        prepare_data(_params(bad, tmp_path / "runs", tmp_path / "cache", "bad"))
