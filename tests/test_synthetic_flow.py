"""The synthesize flow end to end on a small real fixture: crafted files of the three shapes plus
LLM generation from the scripted server, the report and artifacts, the augmented set in
prepare_data (train only, fingerprints verified, new feature key), and `evoformer synth`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_cli import run_main
from test_flow_data import _artifact_data

from evoformer.baselines import BaselineConfig
from evoformer.data import DataSourceConfig, SplitConfig
from evoformer.llm import LLMConfig
from evoformer.runs import StorageConfig
from evoformer.synthetic.augmented import AugmentedSetError, apply_augmented
from evoformer.synthetic.gates import GateConfig
from evoformer.synthetic.generator import GenerationConfig
from evoformer.synthetic.importer import ImportConfig
from flows.data import PrepareDataParams

pytestmark = pytest.mark.integration  # trains in the sandbox, runs flows or starts servers

GOOD = [
    (
        "Permafrost thaw releases methane into the atmosphere.",
        "Thawing permafrost in Siberia emits methane, a potent greenhouse gas.",
    ),
    (
        "Bird migration is shifting earlier in spring.",
        "Many European bird species now arrive one to two weeks earlier than in 1960.",
    ),
    (
        "Snow cover in the Northern Hemisphere is declining.",
        "Spring snow cover in the Northern Hemisphere has shrunk since the 1960s.",
    ),
]


@pytest.fixture()
def synthetic_folder(tmp_path: Path, small_splits) -> Path:
    train, test = small_splits["train"], small_splits["test"]
    folder = tmp_path / "seed"
    (folder / "gpt-3.5").mkdir(parents=True)
    (folder / "llama-2").mkdir()
    (folder / "vicuna").mkdir()
    (folder / "gpt-3.5" / "supports_data.json").write_text(
        json.dumps(
            [
                {"claim": GOOD[0][0], "evidence": GOOD[0][1], "claim label": "Supports"},
                {
                    "claim": test["claim"][0],
                    "evidence": test["evidence"][0],
                    "claim label": "Supports",
                },  # a test example
                {
                    "claim": train["claim"][0],
                    "evidence": train["evidence"][0],
                    "claim label": train["label"][0],
                },  # a train pair
                {"claim": GOOD[0][0].upper(), "evidence": GOOD[0][1], "claim label": "Supports"},  # exact duplicate
            ],
            indent=2,
        )
    )
    (folder / "llama-2" / "refutes_new.json").write_text(
        '[\n  [\n  [\n    "{}",\n    "{}"\n  ],\n  [\n    "Evidence:",\n    "x"\n  ]\n]'.format(*GOOD[1])
    )
    (folder / "vicuna" / "supports.json").write_text(json.dumps([{"Claim": GOOD[2][0], "Evidence": GOOD[2][1]}]))
    return folder


def _data(source: Path, runs: Path, cache: Path, run_id: str, **kw) -> PrepareDataParams:
    return PrepareDataParams(
        data=DataSourceConfig(source=str(source)),
        baselines=BaselineConfig(c_grid=[0.01]),
        storage=StorageConfig(runs_dir=str(runs), cache_dir=str(cache), run_id=run_id),
        progress=False,
        **kw,
    )


def test_synthesize_imports_generates_gates_and_feeds_prepare_data(
    prefect_harness,
    scripted_llm_server,
    small_climate_fever,
    small_splits,
    small_features,
    feature_cache_dir,
    synthetic_folder,
    tmp_path,
):
    from flows.data import prepare_data
    from flows.synthesize import SynthesizeParams, synthesize

    generated = {
        "claim": "Heat-related deaths in Europe are increasing.",
        "evidence": "Heat-related mortality in Europe rose markedly during the 2022 summer.",
    }
    server = scripted_llm_server(
        [
            {"content": "```json\n" + json.dumps({"examples": [generated]}) + "\n```"},
            {"content": "not JSON at all"},
        ]
    )
    runs = tmp_path / "runs"
    params = SynthesizeParams(
        data=_data(small_climate_fever, runs, feature_cache_dir, "synth"),
        imports=ImportConfig(paths=[str(synthetic_folder)]),
        generation=GenerationConfig(
            per_label=1,
            labels=["SUPPORTS", "REFUTES"],
            examples_per_request=1,
            few_shot=2,
            llm=LLMConfig(base_url=server.base_url, model="scripted", max_concurrency=1, max_retries=0),
        ),
        gates=GateConfig(verify="classifier"),
    )
    state = synthesize(params, return_state=True)
    report = state.result()

    gates = {g["gate"]: g for g in report["gates"]}
    assert list(gates) == [
        "schema",
        "exact_duplicates",
        "decontamination",
        "near_duplicates",
        "label_verification",
        "class_balance",
    ]
    assert (gates["schema"]["input"], gates["schema"]["dropped"]) == (
        10,
        3,
    )  # 8 rows + 2 reply items; stray '[', a short pair, a reply without JSON
    assert gates["exact_duplicates"]["reasons"] == {
        "exact copy of a train pair": 1,
        "exact duplicate within the synthetic set": 1,
    }
    assert gates["decontamination"]["dropped"] == 1 and gates["decontamination"]["detail"]["by_split"] == {"test": 1}
    assert report["kept"] == 4 and report["kept_sources"]["llm"] == 1
    assert report["generation"]["requests"] == 2 and report["generation"]["rejected"] == 1
    assert report["label_verification"]["checked"] == 4 and report["llm"]["requests"] == 2

    folder = Path(report["run_dir"]) / "synthetic"
    rejected = pd.read_parquet(folder / "rejected.parquet")
    assert set(rejected["gate"]) == {"exact_duplicates", "decontamination"}
    assert rejected[rejected["gate"] == "decontamination"]["claim"].tolist() == [small_splits["test"]["claim"][0]]
    augmented = pd.read_parquet(Path(report["augmented"]["path"]) / "train.parquet")
    synthetic = augmented[augmented["source"] != "real"]
    assert len(synthetic) == 4 and len(augmented) == len(small_splits["train"]) + 4
    assert set(synthetic["generator"]) == {"gpt-3.5", "llama-2", "vicuna", "scripted"}
    llm_rows = synthetic[synthetic["source"] == "llm"]
    assert (
        llm_rows["prompt_hash"].str.len().eq(16).all()
        and synthetic[synthetic["source"] != "llm"]["prompt_hash"].isna().all()
    )
    assert json.loads((folder / "report.json").read_text())["kept"] == 4
    flow_run_id = state.state_details.flow_run_id
    assert {r["gate"]: r["kept"] for r in _artifact_data("synthetic-gates", flow_run_id)} == {
        g: v["kept"] for g, v in gates.items()
    }
    assert len(_artifact_data("synthetic-files", flow_run_id)) == 3

    summary = prepare_data(
        _data(small_climate_fever, runs, feature_cache_dir, "augmented", augmented=report["augmented"]["path"])
    )
    assert summary["splits"]["train"]["pairs"] == len(small_splits["train"]) + 4
    assert summary["augmented"]["version"] == report["augmented"]["version"] and summary["claim_overlap"] == 0
    for name in ("val", "test"):
        assert summary["fingerprints"][name] == small_splits.fingerprints[name]
    assert summary["fingerprints"]["train"] != small_splits.fingerprints["train"]
    assert summary["features_path"] != str(small_features.path.resolve())
    assert len(pd.read_parquet(Path(summary["run_dir"]) / "data" / "train.parquet")) == len(augmented)

    with pytest.raises(AugmentedSetError, match="gated against other"):
        prepare_data(
            _data(
                small_climate_fever,
                runs,
                feature_cache_dir,
                "other-split",
                augmented=report["augmented"]["path"],
                split=SplitConfig(seed=14),
            )
        )
    edited = tmp_path / "edited"
    edited.mkdir()
    (edited / "manifest.json").write_text((Path(report["augmented"]["path"]) / "manifest.json").read_text())
    augmented.iloc[:-1].to_parquet(edited / "train.parquet", index=False)
    with pytest.raises(AugmentedSetError, match="does not match version"):
        apply_augmented(small_splits, edited)


def test_synth_cli_json_and_missing_endpoint(
    prefect_harness, small_climate_fever, feature_cache_dir, synthetic_folder, tmp_path, monkeypatch
):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    common = [
        "--source",
        str(small_climate_fever),
        "--runs-dir",
        str(tmp_path),
        "--cache-dir",
        str(feature_cache_dir),
        "--no-progress",
    ]
    code, out, _ = run_main(
        ["synth", "--from-file", str(synthetic_folder), "--verify", "none", "--run-id", "cli", "--json", *common]
    )
    assert code == 0
    summary = json.loads(out)
    assert [g["gate"] for g in summary["gates"]] == [
        "schema",
        "exact_duplicates",
        "decontamination",
        "near_duplicates",
        "class_balance",
    ]
    assert summary["kept"] == 3 and Path(summary["augmented"]["path"]).is_dir()
    assert json.loads((tmp_path / "cli" / "summary.json").read_text())["synthetic"]["kept"] == 3

    code, out, _ = run_main(["synth", "--from-file", str(synthetic_folder), "--run-id", "text", *common])
    assert code == 0 and "decontamination" in out and "llama-2/refutes_new.json" in out

    code, _, err = run_main(["synth", "--generate", "2", "--run-id", "nollm", *common])
    assert code == 2 and "need an endpoint" in err


def test_data_train_and_evolve_commands_take_the_augmented_set():
    from flows.cli import build_parser, prepare_data_params
    from flows.evolve import EvolveParams

    for argv in (["data"], ["train", "p.py"], ["evolve"]):
        args = build_parser().parse_args([*argv, "--augmented", "runs/x/synthetic/augmented-abc"])
        assert prepare_data_params(args).augmented == "runs/x/synthetic/augmented-abc"
    assert EvolveParams(data=PrepareDataParams(augmented="A")).data.augmented == "A"
    assert PrepareDataParams().augmented is None
