"""The synthetic importer on each shape, tolerant JSON reading, labels and rejection reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evoformer.data import DataSourceError
from evoformer.synthetic.importer import ImportConfig, filename_label, import_files
from evoformer.synthetic.jsontext import Element, Skipped, array_elements, json_values

SEED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "synthetic-seed"
C1, E1 = (
    "Sea levels are rising faster than before.",
    "Satellite altimetry shows the rate of sea level rise has doubled since 1993.",
)
C2, E2 = "Arctic sea ice is recovering.", "Arctic sea ice extent keeps declining by about 13 percent per decade."


def _write(path: Path, payload: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload, indent=2))
    return path


def test_gpt_objects_take_the_claim_label_field(tmp_path):
    path = _write(
        tmp_path / "gpt-3.5" / "mixed.json",
        [
            {"claim": C1, "evidence": E1, "claim label": "Supports"},
            {"claim": C2, "evidence": E2, "claim label": "REFUTES"},
        ],
    )
    result = import_files(ImportConfig(paths=[str(path)]))
    assert [(e.claim, e.label, e.generator) for e in result.examples] == [
        (C1, "SUPPORTS", "gpt-3.5"),
        (C2, "REFUTES", "gpt-3.5"),
    ]
    [report] = result.report.files
    assert report.shapes == {"object": 2} and report.label_sources == {"row": 2} and report.rejected == 0
    assert result.examples[0].origin == f"{path}:2" and result.examples[0].source == "import:gpt-3.5/mixed.json"


def test_llama_pairs_take_the_label_from_the_file_name(tmp_path):
    path = _write(tmp_path / "llama-2" / "refutes_new.json", [[C1, E1], [C2, E2]])
    result = import_files(ImportConfig(paths=[str(tmp_path)]))
    assert [e.label for e in result.examples] == ["REFUTES", "REFUTES"]
    assert result.report.files[0].shapes == {"pair": 2} and result.report.files[0].label_sources == {"filename": 2}
    assert result.report.files[0].path == str(path)


def test_vicuna_capitalised_keys_and_the_label_option(tmp_path):
    path = _write(tmp_path / "vicuna" / "supports.json", [{"Claim": C1 + " ", "Evidence": " " + E1}])
    by_name = import_files(ImportConfig(paths=[str(path)]))
    assert (
        by_name.examples[0].label == "SUPPORTS"
        and by_name.examples[0].claim == C1
        and by_name.examples[0].evidence == E1
    )
    by_option = import_files(ImportConfig(paths=[str(path)], label="NEI", generator="vicuna-13b"))
    assert by_option.examples[0].label == "NOT_ENOUGH_INFO" and by_option.examples[0].generator == "vicuna-13b"
    assert by_option.report.files[0].label_sources == {"option": 1}


def test_rows_without_any_label_are_rejected_with_the_reason(tmp_path):
    path = _write(tmp_path / "other" / "pairs.json", [[C1, E1]])
    result = import_files(ImportConfig(paths=[str(path)]))
    assert result.examples == [] and result.report.rejected == 1
    assert "no label" in result.report.files[0].rejections[0].reason
    named = _write(tmp_path / "other" / "supports.json", [[C1, E1]])
    assert import_files(ImportConfig(paths=[str(named)], label_from_filename=False)).report.rejected == 1


def test_bad_rows_are_counted_with_file_line_and_reason(tmp_path):
    path = _write(
        tmp_path / "x" / "supports.json",
        [
            [C1, E1],
            ["short", E2],
            [C2],
            {"claim": C2},
            {"claim": C2, "evidence": 42},
            {"claim": C2, "evidence": E2, "label": "MAYBE"},
            "just text",
        ],
    )
    result = import_files(ImportConfig(paths=[str(path)]))
    report = result.report.files[0]
    assert (report.rows_read, report.examples, report.rejected) == (7, 1, 6)
    reasons = [r.reason for r in report.rejections]
    assert "at least 10 characters" in reasons[0]
    assert "list of 1" in reasons[1]
    assert "without evidence" in reasons[2]
    assert "expected text" in reasons[3]
    assert "unknown label" in reasons[4]
    assert "got str" in reasons[5]
    assert all(r.origin.startswith(f"{path}:") for r in report.rejections)


def test_a_stray_bracket_loses_no_rows(tmp_path):
    text = (
        '[\n  [\n    "{}",\n    "{}"\n  ],\n  [\n  [\n    "{}",\n    "{}"\n  ],\n  [\n    "{}",\n    "{}"\n  ]\n]'
    ).format(C1, E1, C2, E2, C2 + " Really.", E2)
    path = _write(tmp_path / "llama-2" / "refutes_new.json", text)
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    result = import_files(ImportConfig(paths=[str(path)]))
    assert [e.claim for e in result.examples] == [C1, C2, C2 + " Really."]
    [rejection] = result.report.files[0].rejections
    assert rejection.origin == f"{path}:6" and "stray '['" in rejection.reason


def test_a_broken_element_is_skipped_and_reading_resumes(tmp_path):
    text = (
        f'[\n  {{"claim": "{C1}", "evidence": "{E1}" "label": 0}},\n'
        f'  {{"claim": "{C2}", "evidence": "{E2}", "label": 1}}\n]'
    )
    items = list(array_elements(text))
    assert isinstance(items[0], Skipped) and items[0].line == 2 and "invalid JSON" in items[0].reason
    assert isinstance(items[1], Element) and items[1].line == 3 and items[1].value["label"] == 1
    truncated = f'[\n  ["{C1}", "{E1}"],\n  ["{C2}", "{E2}'
    found = list(array_elements(truncated))
    assert isinstance(found[0], Element) and all(isinstance(x, Skipped) for x in found[1:])
    with pytest.raises(ValueError, match="not a JSON array"):
        list(array_elements('{"claim": 1}'))


def test_jsonl_files_and_unreadable_files(tmp_path):
    path = _write(tmp_path / "g" / "refutes.jsonl", json.dumps({"claim": C1, "evidence": E1}) + "\n{broken\n\n")
    result = import_files(ImportConfig(paths=[str(path)]))
    assert len(result.examples) == 1 and result.report.files[0].rejections[0].origin == f"{path}:2"
    not_json = _write(tmp_path / "g" / "supports.json", "claim,evidence\nx,y\n")
    assert (
        "cannot read the file" in import_files(ImportConfig(paths=[str(not_json)])).report.files[0].rejections[0].reason
    )
    with pytest.raises(DataSourceError, match="does not exist"):
        import_files(ImportConfig(paths=[str(tmp_path / "missing.json")]))


def test_filename_labels_and_json_in_prose():
    assert filename_label(Path("supports_data.json")) == "SUPPORTS"
    assert filename_label(Path("refutes_new.json")) == "REFUTES"
    assert filename_label(Path("nei.json")) == "NOT_ENOUGH_INFO"
    assert filename_label(Path("supports_and_refutes.json")) is None and filename_label(Path("data.json")) is None
    assert list(json_values('Sure! ```json\n{"examples": []}\n``` Hope it helps'))[0] == {"examples": []}
    assert next(json_values('Here: [{"claim": "a"}] done')) == [{"claim": "a"}]
    assert list(json_values("no json here")) == []


def test_every_shared_seed_file_imports(tmp_path):
    if not SEED.is_dir():
        pytest.skip(f"shared synthetic seed not found at {SEED}")
    result = import_files(ImportConfig(paths=[str(SEED)]))
    files = {Path(f.path).parent.name + "/" + Path(f.path).name: f for f in result.report.files}
    assert set(files) == {
        "gpt-3.5/refutes_data.json",
        "gpt-3.5/supports_data.json",
        "llama-2/refutes_new.json",
        "llama-2/supports_new.json",
        "vicuna/refutes.json",
        "vicuna/supports.json",
    }
    for f in files.values():
        assert f.rows_read == f.examples + f.rejected
        assert len(set(f.labels)) == 1  # each file holds one label
    assert files["gpt-3.5/supports_data.json"].label_sources == {"row": 391}
    assert files["vicuna/supports.json"].label_sources == {"filename": 305}
    broken = files["llama-2/refutes_new.json"]
    assert broken.examples == 440 and [r.origin.rsplit(":", 1)[1] for r in broken.rejections] == ["450"]
    assert result.report.examples == 389 + 391 + 440 + 427 + 26 + 305
