"""Loaders for every format, with malformed input, and the default-source order."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import write_jsonl

from evoformer.data import DataSourceConfig, DataSourceError, MalformedRowError, load_pairs, sources
from evoformer.labels import normalize_label


def _claim(cid: str, claim: str, labels: list[object]) -> dict:
    return {
        "claim_id": cid,
        "claim": claim,
        "claim_label": "SUPPORTS",
        "evidences": [
            {"evidence_id": f"{cid}:{i}", "evidence_label": lab, "evidence": f"evidence {cid} {i}"}
            for i, lab in enumerate(labels)
        ],
    }


def test_release_jsonl_expands_claims_into_pairs(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "cf.jsonl", [_claim("1", "Seas rise.", ["SUPPORTS", "REFUTES"]), _claim("2", "Ice melts.", [2])]
    )
    loaded = load_pairs(DataSourceConfig(source=str(path)))
    assert loaded.report.kind == "climate-fever"
    assert loaded.report.rows_read == 2 and loaded.report.pairs == 3
    assert loaded.frame["label"].tolist() == ["SUPPORTS", "REFUTES", "NOT_ENOUGH_INFO"]
    assert loaded.frame["claim_id"].tolist() == ["1", "1", "2"]


@pytest.mark.parametrize(
    "bad_line, expected",
    [
        ('{"claim_id": "3", "claim": "x", "evidences": [', "invalid JSON"),
        (json.dumps({"claim_id": "3", "claim": "x"}), "evidences"),
        (json.dumps(_claim("3", "x", ["MAYBE"])), "unknown label"),
        (json.dumps(_claim("3", "   ", ["SUPPORTS"])), "claim"),
    ],
)
def test_release_malformed_row_names_file_and_line(tmp_path: Path, bad_line: str, expected: str) -> None:
    path = write_jsonl(tmp_path / "cf.jsonl", [_claim("1", "a", ["SUPPORTS"]), _claim("2", "b", ["REFUTES"]), bad_line])
    with pytest.raises(MalformedRowError) as info:
        load_pairs(DataSourceConfig(source=str(path)))
    assert info.value.location == f"{path}:3"
    assert expected in str(info.value)


def test_skip_option_counts_every_skipped_row(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "cf.jsonl",
        [_claim("1", "a", ["SUPPORTS"]), "not json", _claim("2", "b", ["BAD"]), _claim("3", "c", ["REFUTES"])],
    )
    loaded = load_pairs(DataSourceConfig(source=str(path), on_bad_rows="skip"))
    assert loaded.report.rows_read == 4
    assert loaded.report.rows_skipped == 2
    assert [r.location for r in loaded.report.rejected] == [f"{path}:2", f"{path}:3"]
    assert loaded.report.pairs == 2


def test_undecodable_line_is_one_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "cf.jsonl"
    good = json.dumps(_claim("1", "a", ["SUPPORTS"])).encode()
    path.write_bytes(good + b"\n" + b'{"claim_id": "2", "claim": "\xff\xfe"}\n' + good.replace(b'"1"', b'"3"') + b"\n")
    with pytest.raises(MalformedRowError, match="invalid UTF-8") as info:
        load_pairs(DataSourceConfig(source=str(path)))
    assert info.value.location == f"{path}:2"
    loaded = load_pairs(DataSourceConfig(source=str(path), on_bad_rows="skip"))
    assert loaded.report.rows_skipped == 1 and loaded.report.pairs == 2


def test_csv_with_configured_columns_and_bad_row_line(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    pd.DataFrame(
        {"c": ["claim one", "claim two", "claim three"], "e": ["ev1", "ev2", "ev3"], "y": ["0", "refutes", "7"]}
    ).to_csv(path, index=False)
    config = DataSourceConfig(source=str(path), claim_column="c", evidence_column="e", label_column="y")
    with pytest.raises(MalformedRowError) as info:
        load_pairs(config)
    assert info.value.location == f"{path}:4"  # header is line 1, third data row is line 4
    loaded = load_pairs(config.model_copy(update={"on_bad_rows": "skip"}))
    assert loaded.frame["label"].tolist() == ["SUPPORTS", "REFUTES"]
    assert loaded.report.rows_skipped == 1


def test_csv_missing_column_lists_what_is_there(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    pd.DataFrame({"claim": ["a"], "text": ["b"], "label": ["SUPPORTS"]}).to_csv(path, index=False)
    with pytest.raises(DataSourceError, match=r"missing column\(s\) \['evidence'\].*text"):
        load_pairs(DataSourceConfig(source=str(path)))


def test_pairs_jsonl_and_parquet(tmp_path: Path) -> None:
    rows = [
        {"q": "claim a", "ev": "evidence a", "lab": "SUPPORTS", "cid": "A"},
        {"q": "claim b", "ev": "evidence b", "lab": 1, "cid": "B"},
    ]
    config = dict(claim_column="q", evidence_column="ev", label_column="lab", claim_id_column="cid")
    jsonl = write_jsonl(tmp_path / "pairs.jsonl", rows)
    parquet = tmp_path / "pairs.parquet"
    pd.DataFrame(rows).astype({"lab": str}).to_parquet(parquet)
    for path in (jsonl, parquet):
        loaded = load_pairs(DataSourceConfig(source=str(path), **config))
        assert loaded.report.kind.startswith("pairs-")
        assert loaded.frame[["claim_id", "label"]].values.tolist() == [["A", "SUPPORTS"], ["B", "REFUTES"]]
    bad = write_jsonl(tmp_path / "bad.jsonl", [rows[0], {"q": "claim c", "ev": "x"}])
    with pytest.raises(MalformedRowError, match="bad.jsonl:2.*missing field"):
        load_pairs(DataSourceConfig(source=str(bad), **config))


def test_parquet_with_integer_labels(tmp_path: Path) -> None:
    path = tmp_path / "ints.parquet"
    pd.DataFrame({"claim": ["a", "b"], "evidence": ["x", "y"], "label": [0, 2]}).to_parquet(path)
    assert load_pairs(DataSourceConfig(source=str(path))).frame["label"].tolist() == ["SUPPORTS", "NOT_ENOUGH_INFO"]


def test_claims_without_ids_are_grouped_by_normalised_text(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [{"claim": "Seas  rise", "evidence": "a", "label": 0}, {"claim": "seas rise", "evidence": "b", "label": 1}],
    )
    ids = load_pairs(DataSourceConfig(source=str(path))).frame["claim_id"]
    assert ids.nunique() == 1


def test_unusable_sources_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="does not exist"):
        load_pairs(DataSourceConfig(source=str(tmp_path / "missing.jsonl")))
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(DataSourceError, match="unsupported file type"):
        load_pairs(DataSourceConfig(source=str(tmp_path / "data.xlsx")))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataSourceError, match="empty"):
        load_pairs(DataSourceConfig(source=str(tmp_path / "empty.jsonl")))


def test_hub_offline_says_how_to_use_a_local_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataSourceError) as info:
        load_pairs(DataSourceConfig(source="hub"))
    message = str(info.value)
    assert "climate_fever" in message and "--source" in message and "EVOFORMER_DATA" in message


def test_default_source_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    shared = tmp_path / "shared.jsonl"
    shared.write_text("{}\n")
    monkeypatch.setattr(sources, "default_source_candidates", lambda cwd=None: [tmp_path / "absent.jsonl", shared])
    monkeypatch.setenv("EVOFORMER_DATA", "/from/env.jsonl")
    assert sources.resolve_source("/explicit.csv") == "/explicit.csv"
    assert sources.resolve_source(None) == "/from/env.jsonl"
    monkeypatch.delenv("EVOFORMER_DATA")
    assert sources.resolve_source(None) == str(shared)
    monkeypatch.setattr(sources, "default_source_candidates", lambda cwd=None: [tmp_path / "absent.jsonl"])
    assert sources.resolve_source(None) == "hub"


def test_label_normalisation() -> None:
    assert normalize_label(" supports ") == "SUPPORTS"
    assert normalize_label("NOT ENOUGH INFO") == "NOT_ENOUGH_INFO"
    assert normalize_label(1) == "REFUTES"
    for bad in ("DISPUTED", 3, True, None):
        with pytest.raises(ValueError):
            normalize_label(bad)


def test_shared_release_loads_completely(shared_climate_fever: Path) -> None:
    loaded = load_pairs(DataSourceConfig(source=str(shared_climate_fever)))
    assert loaded.report.rows_read == 1535 and loaded.report.rows_skipped == 0
    assert loaded.report.pairs == 7675
    assert loaded.report.label_counts == {"NOT_ENOUGH_INFO": 4930, "SUPPORTS": 1943, "REFUTES": 802}
    assert loaded.frame["claim_id"].nunique() == 1535
