"""Flow ``compress`` on a trained transformer candidate: every variant measured, table complete,
results in the run folder, artifact, CLI JSON, and evolve's hand-over by subflow or deployment."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from evoformer.candidates.job import TrainConfig
from evoformer.compression.config import CompressConfig
from evoformer.runs import StorageConfig, update_summary

pytestmark = pytest.mark.integration  # trains in the sandbox, runs flows or starts servers

CANDIDATE = "seed-transformer_small"
SMALL = CompressConfig(
    sparsities=[0.5],
    structured_ratios=[0.5],
    quantizers=["torch_ao", "onnxruntime"],
    finetune=TrainConfig(max_epochs=1, max_train_pairs=96, learning_rate=3e-4, patience=1),
    latency_repeats=3,
)
EXPECTED = [
    "fp32",
    "int8-torch.ao",
    "int8-onnxruntime",
    "onnx-fp32",
    "unstructured-50%",
    "structured-50%",
    "structured-50%+int8-torch.ao",
    "structured-50%+int8-onnxruntime",
]
JSON_FIELDS = {"name", "test_macro_f1", "params_nonzero", "size_bytes", "latency_ms", "speedup_batch1", "size_ratio"}


@pytest.fixture(scope="module")
def trained_run(small_features, small_splits, tmp_path_factory) -> tuple[Path, Path]:
    """A run folder as evolve leaves it, with one trained transformer candidate."""
    from evoformer.baselines import majority_baseline
    from evoformer.candidates.evaluate import evaluate_candidate
    from evoformer.candidates.program import CandidateProgram
    from evoformer.seeds import SEED_DIR
    from flows.train import split_labels

    runs = tmp_path_factory.mktemp("runs")
    run_dir = runs / "run-c"
    (run_dir / "data").mkdir(parents=True)
    for name, frame in small_splits.frames.items():
        frame.to_parquet(run_dir / "data" / f"{name}.parquet", index=False)
    labels = split_labels(run_dir)
    majority = majority_baseline(labels["train"], labels["val"], labels["test"])
    update_summary(
        run_dir,
        {
            "run_id": "run-c",
            "features_path": str(small_features.path),
            "baselines": {"majority": {"val": majority.val.model_dump(), "test": majority.test.model_dump()}},
        },
    )
    result = evaluate_candidate(
        CandidateProgram.from_file(SEED_DIR / "transformer_small.py"),
        small_features.path,
        labels,
        run_dir / "candidates" / CANDIDATE,
        TrainConfig(max_epochs=1, max_train_pairs=128, latency_repeats=3),
    )
    assert result.status == "ok", result.reason
    return runs, run_dir


def test_compress_subflow_measures_every_variant(prefect_harness, trained_run) -> None:
    from test_flow_data import _artifact_data

    from flows.compress import CompressTrigger, trigger_compression

    runs, run_dir = trained_run
    summary = trigger_compression(
        CompressTrigger(mode="subflow", config=SMALL), StorageConfig(runs_dir=str(runs)), "run-c", [CANDIDATE]
    )
    (entry,) = summary["candidates"]
    assert entry["status"] == "ok", entry["reason"]
    variants = {v["name"]: v for v in entry["variants"]}
    assert list(variants) == EXPECTED
    assert all(v["status"] == "ok" for v in variants.values()), {n: v["reason"] for n, v in variants.items()}
    assert all(JSON_FIELDS <= set(v) and set(v["latency_ms"]) == {"batch1", "batch64"} for v in variants.values())

    reference = variants["fp32"]
    assert reference["speedup_batch1"] == 1.0 and reference["size_ratio"] == 1.0
    assert 0.0 <= reference["test_macro_f1"] <= 1.0
    unstructured = variants["unstructured-50%"]
    assert unstructured["params_total"] == reference["params_total"]
    assert (
        unstructured["params_nonzero"] < 0.55 * unstructured["params_total"]
    )  # nearly every number is a prunable weight
    structured = variants["structured-50%"]
    # Layers that read the frozen input (384 wide, also through the pair features) keep their input width.
    assert structured["params_total"] < 0.75 * reference["params_total"] and structured["size_ratio"] > 1.3
    assert variants["int8-torch.ao"]["size_ratio"] > 1.2
    assert variants["int8-onnxruntime"]["size_ratio"] > 2.5
    assert variants["structured-50%+int8-onnxruntime"]["size_ratio"] > variants["int8-onnxruntime"]["size_ratio"]
    for variant in variants.values():  # ratios are against the reference measured in the same run
        ratio = reference["latency_ms"]["batch1"] / variant["latency_ms"]["batch1"]
        assert variant["speedup_batch1"] == pytest.approx(ratio, rel=0.01)
        assert variant["size_ratio"] == pytest.approx(reference["size_bytes"] / variant["size_bytes"], rel=0.01)

    folder = run_dir / "compression" / CANDIDATE
    assert json.loads((folder / "compression.json").read_text())["status"] == "ok"
    assert json.loads((run_dir / "summary.json").read_text())["compress"]["candidates"][0]["candidate"] == CANDIDATE
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        (flow_run,) = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["compress"])), limit=1)
    table = _artifact_data("compress-seed-transformer-small", flow_run.id)
    assert [row["variant"].rstrip(" *") for row in table] == EXPECTED


def test_cli_compress_top_k_json_and_errors(prefect_harness, trained_run) -> None:
    from flows.cli import main

    runs, _ = trained_run
    args = [
        "compress",
        "--run",
        "run-c",
        "--runs-dir",
        str(runs),
        "--sparsities",
        "--structured-ratios",
        "--quantizers",
        "onnxruntime",
        "--max-train-pairs",
        "64",
        "--latency-repeats",
        "3",
    ]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*args, "--top", "1", "--json"]) == 0
    (entry,) = json.loads(out.getvalue())["candidates"]
    assert entry["candidate"] == CANDIDATE and [v["name"] for v in entry["variants"]] == [
        "fp32",
        "int8-onnxruntime",
        "onnx-fp32",
    ]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(args) == 0
    assert "int8-onnxruntime" in out.getvalue() and "size_x" in out.getvalue()
    majority = json.loads((trained_run[1] / "summary.json").read_text())["baselines"]["majority"]["test"]["macro_f1"]
    assert (
        "baseline majority   val" in out.getvalue() and f"test {majority:.4f}" in out.getvalue()
    )  # quality beside the majority class

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main([*args, "--candidate", "g09-c99"]) == 2
    assert "not a trained candidate of run run-c: g09-c99" in err.getvalue()
    with contextlib.redirect_stderr(err):
        assert main(["compress", "--run", "no-such-run", "--runs-dir", str(runs)]) == 2
    assert "no run 'no-such-run'" in err.getvalue()


def test_evolve_hands_its_front_to_the_compress_deployment(monkeypatch, tmp_path) -> None:
    import prefect.deployments

    from flows.compress import CompressParams, CompressTrigger, trigger_compression

    calls = []

    class FlowRun:
        id = "0000-run"

    def fake_run_deployment(name, parameters, timeout):
        calls.append((name, parameters, timeout))
        return FlowRun()

    monkeypatch.setattr(prefect.deployments, "run_deployment", fake_run_deployment)
    storage = StorageConfig(runs_dir=str(tmp_path))
    out = trigger_compression(CompressTrigger(mode="deployment", config=SMALL), storage, "run-x", ["g01-c00", "seed-a"])
    ((name, parameters, timeout),) = calls
    assert name == "compress/compress" and timeout == 0 and out["flow_run_id"] == "0000-run"
    params = CompressParams.model_validate(parameters["params"])  # what the deployment will receive
    assert params.run_id == "run-x" and params.candidates == ["g01-c00", "seed-a"] and params.config == SMALL
