"""Progress lines of the long steps (issue 18): the throttle, and each domain function's start,
progress and end lines with fast fakes (no encoder, no LLM, no sandbox)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from evoformer.progress import ProgressLog, Throttle

Y_VAL = np.array([0, 1, 2, 0, 1, 2])
PERFECT, WRONG = Y_VAL.tolist(), [0] * 6


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_throttle_waits_for_a_tenth_and_30_seconds_whichever_is_rarer() -> None:
    clock = Clock()
    throttle = Throttle(100, clock=clock)
    assert not throttle.due(50)  # half done, but no 30 s yet
    clock.now = 31.0
    assert throttle.due(50)
    clock.now = 100.0
    assert not throttle.due(55)  # 70 s, but not a tenth more
    assert throttle.due(60)
    assert throttle.due(100)  # the end is always due, however soon


def test_progress_log_lines_and_silence_without_a_log() -> None:
    clock, lines = Clock(), []
    report = ProgressLog(lines.append, "judge", 20, unit="examples", clock=clock)
    for _ in range(19):
        clock.now += 10.0
        report.advance(1)
    report.advance(1)
    assert lines[0] == "judge: 3/20 examples (15%), 30 s" and lines[-1] == "judge: 20/20 examples (100%), 190 s"
    assert len(lines) == 7  # every 3 items (30 s, a tenth being 2) and the end
    ProgressLog(None, "x", 10).advance(10)


class _Tokenizer:
    pad_token_id = 0

    def __call__(self, texts, truncation=True, max_length=None):
        return {"input_ids": [[1 + (ord(c) % 30) for c in text[:6]] for text in texts]}


class _Model:
    config = SimpleNamespace(hidden_size=32)

    def __call__(self, input_ids, attention_mask):
        import torch

        return SimpleNamespace(last_hidden_state=torch.nn.functional.one_hot(input_ids, 32).float())


def test_sentence_embeddings_report_size_progress_time_and_reuse(monkeypatch, tmp_path) -> None:
    from evoformer.features import EncoderConfig, sentences

    monkeypatch.setattr(sentences, "load_encoder", lambda name: (_Tokenizer(), _Model()))
    monkeypatch.setattr(sentences, "encoder_identity", lambda name: "fake-encoder")
    frames = {
        name: pd.DataFrame(
            {"claim": [f"{name} claim {i}" for i in range(2)], "evidence": [f"{name} ev {i}" for i in range(2)]}
        )
        for name in ("train", "val", "test")
    }
    fingerprints = {name: name * 8 for name in frames}
    lines: list[str] = []
    result = sentences.embed_sentences(frames, fingerprints, EncoderConfig(), tmp_path, progress=lines.append)
    assert not result.reused
    assert lines[0] == "sentence embeddings: 12 distinct claims and evidences of 6 pairs"
    assert lines[1].startswith("sentence embeddings: encoding 12 texts (all-MiniLM-L6-v2, length ≤ 256)")
    assert lines[2].startswith("sentence embeddings: 12/12 texts (100%), ")
    assert lines[3].startswith("sentence embeddings: 12 texts encoded in ") and len(lines) == 4
    lines.clear()
    assert sentences.embed_sentences(frames, fingerprints, EncoderConfig(), tmp_path, progress=lines.append).reused
    assert lines == [f"sentence embeddings: reused {result.path}"]
    lines.clear()
    sentences.embed_texts(["a b", "c d"], EncoderConfig(), tmp_path, progress=lines.append)
    sentences.embed_texts(["c d", "a b"], EncoderConfig(), tmp_path, progress=lines.append)
    assert lines[-1] == "sentence embeddings: 2 texts reused from the cache"


class _FakeLLM:
    """Answers every generation request with one valid example (a new one each time)."""

    def __init__(self) -> None:
        self.numbers = itertools.count()  # next() is atomic: the requests come from two threads

    def concurrency(self) -> int:
        return 2

    def complete(self, messages, **_kwargs):
        n = next(self.numbers)
        item = {"claim": f"Generated claim {n} about rising seas.", "evidence": f"Tide gauges show rise {n} mm a year."}
        return SimpleNamespace(text=json.dumps({"examples": [item]}), model="fake-model")


def test_generation_reports_plan_requests_and_counts() -> None:
    from evoformer.synthetic.generator import GenerationConfig, generate

    train = pd.DataFrame(
        {"claim": ["c"] * 3, "evidence": ["e"] * 3, "label": ["SUPPORTS", "REFUTES", "NOT_ENOUGH_INFO"]}
    )
    lines: list[str] = []
    config = GenerationConfig(per_label=4, examples_per_request=2, topics=["ice"], few_shot=0)
    generated = generate(_FakeLLM(), train, config, progress=lines.append)
    assert generated.report.requests == 6
    assert (
        lines[0]
        == "generation: 6 LLM requests for 4 examples per label (NOT_ENOUGH_INFO, REFUTES, SUPPORTS), 2 at once"
    )
    assert lines[1].startswith("generation: 6/6 requests (100%), ")
    assert lines[2].startswith("generation: 6 requests answered (0 failed), 6 examples, 0 items rejected, ")
    assert len(lines) == 3


def _vector(text: str) -> np.ndarray:
    v = np.random.default_rng(abs(hash(text)) % 2**32).standard_normal(256).astype(np.float32)
    return v / np.linalg.norm(v)


def test_gates_report_sizes_each_gate_the_judge_and_the_end() -> None:
    from evoformer.synthetic.gates import GateConfig, run_gates, schema_report
    from evoformer.synthetic.records import SyntheticExample

    def split(name: str, n: int) -> pd.DataFrame:
        labels = ["SUPPORTS", "REFUTES", "NOT_ENOUGH_INFO"]
        return pd.DataFrame(
            {
                "claim": [f"{name} claim {i}" for i in range(n)],
                "evidence": [f"{name} evidence {i}" for i in range(n)],
                "label": [labels[i % 3] for i in range(n)],
            }
        )

    splits = {"train": split("train", 6), "val": split("val", 3), "test": split("test", 3)}
    examples = [
        SyntheticExample(
            claim=f"Synthetic claim {i} on ice.",
            evidence=f"Synthetic evidence {i}.",
            label="SUPPORTS",
            source="llm",
            generator="fake",
            origin=f"row {i}",
        )
        for i in range(5)
    ]
    lines: list[str] = []
    run_gates(
        examples,
        schema_report(5, 5, [], 0),
        splits,
        GateConfig(verify="llm"),
        lambda texts: np.stack([_vector(t) for t in texts]),
        lambda claim, evidence: "SUPPORTS",
        progress=lines.append,
    )
    assert lines[0] == "gates: 5 examples against 6 train, 3 val and 3 test pairs (label verification: llm)"
    gates = [line.split(":")[0] for line in lines if line.startswith("gate ")]
    assert gates == [
        "gate exact_duplicates",
        "gate decontamination",
        "gate near_duplicates",
        "gate label_verification",
        "gate class_balance",
    ]
    assert any(line.startswith("gate exact_duplicates: kept 5 of 5, ") for line in lines)
    assert any(line.startswith("label verification: asking the LLM judge about 5 examples") for line in lines)
    assert any(line.startswith("label verification: 5/5 examples (100%), ") for line in lines)
    assert lines[-1].startswith("gates: kept ") and lines[-1].endswith(" s")


def test_epoch_progress_reports_epochs_throttled_and_the_stop() -> None:
    from evoformer.candidates.evaluate import EarlyStopping, EpochProgress

    clock, lines = Clock(), []
    hook = EpochProgress(EarlyStopping(Y_VAL, patience=2, max_epochs=12), lines.append, "seed: ", clock=clock)
    replies = []
    for seconds, pred in ((10, WRONG), (40, PERFECT), (50, WRONG), (90, WRONG)):
        clock.now = seconds
        replies.append(hook({"type": "epoch", "val_pred": pred}))
    assert replies == [
        {"best": True, "stop": False},
        {"best": True, "stop": False},
        {"best": False, "stop": False},
        {"best": False, "stop": True},
    ]  # the stopper's answers, unchanged
    assert lines == [
        "seed: epoch 2/12: val macro-F1 1.000 (best 1.000 at epoch 2), 40 s",  # epoch 1: under 30 s
        "seed: epoch 4/12: val macro-F1 0.167 (best 1.000 at epoch 2), 90 s, stopping",
    ]

    def broken(line: str) -> None:
        raise OSError("log handler gone")

    quiet = EpochProgress(EarlyStopping(Y_VAL, patience=1, max_epochs=1), broken)
    assert quiet({"type": "epoch", "val_pred": PERFECT}) == {
        "best": True,
        "stop": True,
    }  # a log failure is no protocol error


def _save_weights(path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({"lin.weight": np.ones((3, 4), dtype=np.float32)}, str(path))


def _fake_sandbox(epochs: list[dict], result: dict, weights: list[str]):
    """Stands in for ``run_sandboxed``: sends ``epochs`` to the hook, then writes ``result`` and weights."""
    from evoformer.sandbox.runner import SandboxRun

    def run(module, folder, limits, on_message=None, read_only=(), outputs=None):
        for message in epochs:
            if on_message(dict(message, type="epoch"))["stop"]:
                break
        for name in weights:
            (Path(folder) / name).parent.mkdir(parents=True, exist_ok=True)
            _save_weights(Path(folder) / name)
        (Path(folder) / "result.json").write_text(json.dumps(result))
        return SandboxRun(
            returncode=0,
            timed_out=False,
            wall_s=12.0,
            stdout_tail="",
            stderr_tail="",
            stdout_bytes=0,
            stderr_bytes=0,
            isolation="fake",
        )

    return run


LABELS = {"train": np.array([0, 1, 2, 0]), "val": Y_VAL, "test": np.array([0, 1, 2])}
LATENCY = {"batch1": 1.0, "batch64": 8.0}


def test_evaluate_candidate_reports_start_epochs_and_end(monkeypatch, tmp_path) -> None:
    from conftest import candidate_source

    from evoformer.candidates import evaluate
    from evoformer.candidates.job import TrainConfig
    from evoformer.candidates.program import CandidateProgram

    epochs = [{"val_pred": p} for p in (WRONG, PERFECT, WRONG, WRONG)]
    result = {"status": "ok", "val_pred": PERFECT, "test_pred": [0, 1, 2], "epochs": 4, "latency_ms": LATENCY}
    monkeypatch.setattr(evaluate, "run_sandboxed", _fake_sandbox(epochs, result, ["weights.safetensors"]))
    program = CandidateProgram(name="seed", source=candidate_source("return M(input_dim, num_classes)"))
    lines: list[str] = []
    outcome = evaluate.evaluate_candidate(
        program, tmp_path / "features", LABELS, tmp_path / "seed", TrainConfig(patience=2), progress=lines.append
    )
    assert outcome.status == "ok", outcome.reason
    assert lines[0] == (
        "seed: training up to 12 epochs (patience 2, budget 240 s) on 4 pairs, val 6; sandbox limit "
        f"{evaluate.SandboxLimits().timeout_s:.0f} s"
    )
    assert lines[1].startswith("seed: epoch 4/12: val macro-F1 0.167 (best 1.000 at epoch 2), ")
    assert lines[1].endswith(", stopping")
    assert lines[2] == "seed: ok, val macro-F1 1.000 (epoch 2 of 4), 12 params, 12 s" and len(lines) == 3
    lines.clear()
    bad = CandidateProgram(name="bad", source="import os\ndef build_model(input_dim, num_classes):\n    return os\n")
    assert (
        evaluate.evaluate_candidate(bad, tmp_path, LABELS, tmp_path / "bad", progress=lines.append).status == "rejected"
    )
    assert lines[0].startswith("bad: rejected by the static check: ")


def test_compress_candidate_reports_plan_finetuning_variants_and_end(monkeypatch, tmp_path) -> None:
    from evoformer.compression import evaluate
    from evoformer.compression.config import CompressConfig

    source = tmp_path / "seed"
    source.mkdir()
    (source / "program.py").write_text("def build_model(input_dim, num_classes):\n    return None\n")
    _save_weights(source / "weights.safetensors")
    (source / "metrics.json").write_text(json.dumps({"status": "ok"}))
    variant = {"val_pred": PERFECT, "test_pred": [0, 1, 2], "latency_ms": LATENCY, "seconds": 3.0}
    result = {
        "status": "ok",
        "variants": [
            {"name": "fp32", "technique": "none", "file": "weights.safetensors", **variant},
            {
                "name": "unstructured-50%",
                "technique": "global-magnitude",
                "file": "variants/u50.safetensors",
                **variant,
            },
        ],
    }
    epochs = [{"variant": "unstructured-50%", "val_pred": p} for p in (PERFECT, WRONG)]
    monkeypatch.setattr(evaluate, "run_sandboxed", _fake_sandbox(epochs, result, ["variants/u50.safetensors"]))
    config = CompressConfig(sparsities=[0.5], structured_ratios=[], quantizers=["torch_ao"], onnx_fp32=False)
    lines: list[str] = []
    report = evaluate.compress_candidate(
        source, tmp_path / "features", LABELS, tmp_path / "out", config, progress=lines.append
    )
    assert report.status == "ok", report.reason
    assert lines[0].startswith("compress seed: fp32 reference, int8 torch_ao, unstructured 50%; 1 pruned variant(s) ")
    assert lines[1].startswith("compress seed unstructured-50% fine-tune epoch 2/3: val macro-F1 0.167 (best 1.000")
    assert lines[2] == "compress seed fp32: val macro-F1 1.000, 1.00 ms at batch 1, 3 s"
    assert lines[3] == "compress seed unstructured-50%: val macro-F1 1.000, 1.00 ms at batch 1, 3 s"
    assert lines[4] == "compress seed: ok; 2/2 variants ok, best unstructured-50%, 12 s" and len(lines) == 5
