"""Task ``train_candidate`` and flow ``train_program``: caching, retries, CLI JSON."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from conftest import candidate_source

from evoformer.baselines import label_ids
from evoformer.candidates.job import TrainConfig
from evoformer.candidates.program import CandidateProgram
from evoformer.sandbox.limits import SandboxLimits
from evoformer.seeds import SEED_DIR

pytestmark = pytest.mark.integration  # trains in the sandbox, runs flows or starts servers

FAST = TrainConfig(max_epochs=1, max_train_pairs=64, latency_repeats=3)


def _labels(small_splits):
    return {name: label_ids(frame["label"]) for name, frame in small_splits.frames.items()}


def _task_run_count(state) -> int:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_task_run(state.state_details.task_run_id).run_count


def _in_flow(fn):
    from prefect import flow

    return flow(name="test-harness-flow")(fn)()


def test_train_candidate_caches_by_program_data_and_config(
    prefect_harness, small_features, small_splits, tmp_path
) -> None:
    import logging

    from tasks.candidates import train_candidate

    # The task's run logger is an adapter over this logger; a handler on it sees every line the
    # task run logs, whatever earlier tests did to propagation or to the console handler.
    lines: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    task_logger = logging.getLogger("prefect.task_runs")
    task_logger.addHandler(handler)
    level = task_logger.level
    task_logger.setLevel(logging.INFO)

    program = CandidateProgram(name="linear", source=candidate_source("return M(input_dim, num_classes)"))
    args = (str(small_features.path), _labels(small_splits))

    def body():
        first = train_candidate(program, *args, str(tmp_path / "a"), FAST, SandboxLimits(), return_state=True)
        same = train_candidate(program, *args, str(tmp_path / "b"), FAST, SandboxLimits(), return_state=True)
        other_config = train_candidate(
            program, *args, str(tmp_path / "c"), FAST.model_copy(update={"seed": 1}), SandboxLimits(), return_state=True
        )
        return first, same, other_config

    try:
        first, same, other = _in_flow(body)
    finally:
        task_logger.removeHandler(handler)
        task_logger.setLevel(level)
    assert first.result().status == "ok"
    assert same.name == "Cached" and same.result().metrics == first.result().metrics
    assert other.name != "Cached"
    # The training reports its epochs as they arrive (a training can take minutes).
    assert any("linear: epoch 1/1: val macro-F1" in line for line in lines), lines


def test_only_transient_failures_are_retried(prefect_harness, small_features, small_splits, tmp_path) -> None:
    from flows.train import result_of
    from tasks.candidates import train_candidate

    memory_hog = CandidateProgram(
        name="hog", source=candidate_source("hoard = [torch.ones(25_000_000) for _ in range(100)]")
    )
    broken = CandidateProgram(name="broken", source=candidate_source("return undefined_name"))
    task = train_candidate.with_options(
        retries=1, retry_delay_seconds=0, cache_policy=None, cache_key_fn=None, persist_result=False
    )
    args = (str(small_features.path), _labels(small_splits))

    def body():
        hog = task(memory_hog, *args, str(tmp_path / "hog"), FAST, SandboxLimits(memory_mb=2048), return_state=True)
        bad = task(broken, *args, str(tmp_path / "bad"), FAST, SandboxLimits(), return_state=True)
        return hog, bad

    hog, bad = _in_flow(body)
    assert hog.is_failed() and result_of(hog).status == "killed"
    assert _task_run_count(hog) == 2  # first try + one retry
    assert bad.is_completed() and bad.result().status == "build_error" and "undefined_name" in bad.result().reason
    assert _task_run_count(bad) == 1


def _main(args: list[str]) -> tuple[int, str]:
    from flows.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(args)
    return code, out.getvalue()


def test_cli_train_json(prefect_harness, small_climate_fever, feature_cache_dir, tmp_path) -> None:
    common = [
        "--source",
        str(small_climate_fever),
        "--runs-dir",
        str(tmp_path),
        "--cache-dir",
        str(feature_cache_dir),
        "--no-progress",
        "--max-epochs",
        "2",
        "--max-train-pairs",
        "128",
        "--json",
    ]
    code, out = _main(["train", str(SEED_DIR / "attention_pool_mlp.py"), "--run-id", "ok", *common])
    summary = json.loads(out)
    assert code == 0 and summary["status"] == "ok" and summary["reason"] == ""
    metrics = summary["metrics"]
    for key in ("params", "val", "test", "latency_ms", "train_seconds"):
        assert key in metrics
    assert (
        metrics["val"]["macro_f1"] >= 0 and metrics["latency_ms"]["batch1"] > 0 and metrics["latency_ms"]["batch64"] > 0
    )
    assert summary["baselines"]["majority"]["test"] > 0
    folder = Path(summary["folder"])
    assert (folder / "weights.safetensors").is_file() and (folder / "metrics.json").is_file()
    assert json.loads((tmp_path / "ok" / "summary.json").read_text())["train"]["status"] == "ok"

    evil = tmp_path / "evil.py"
    evil.write_text("import os\n\ndef build_model(input_dim, num_classes):\n    return os.system('true')\n")
    code, out = _main(["train", str(evil), "--run-id", "evil", *common])
    summary = json.loads(out)
    assert code == 1 and summary["status"] == "rejected" and "'os'" in summary["reason"] and summary["metrics"] is None


def test_prelude_is_available_to_the_program(prefect_harness, small_features, small_splits, tmp_path) -> None:
    from evoformer.candidates.evaluate import evaluate_candidate

    prelude = (
        "import torch\n\ndef masked_mean(x, mask):\n"
        "    m = mask.unsqueeze(-1).float()\n    return (x * m).sum(1) / m.sum(1)\n"
    )
    source = candidate_source("return M(input_dim, num_classes)").replace(
        "self.lin(x[:, 0])", "self.lin(masked_mean(x, mask))"
    )
    result = evaluate_candidate(
        CandidateProgram(name="p", source=source, prelude=prelude),
        small_features.path,
        _labels(small_splits),
        tmp_path / "p",
        FAST,
        SandboxLimits(),
    )
    assert result.status == "ok", result.reason
    without = evaluate_candidate(
        CandidateProgram(name="p", source=source),
        small_features.path,
        _labels(small_splits),
        tmp_path / "q",
        FAST,
        SandboxLimits(),
    )
    assert without.status == "runtime_error" and "masked_mean" in without.reason
