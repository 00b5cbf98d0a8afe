"""Which int8 path is fastest here? Side by side in one run, for every seed architecture:
fp32 eager, torch.ao ``quantize_dynamic``, torchao's int8 dynamic path, ONNX Runtime fp32 and
ONNX Runtime dynamic int8, plus Torch-Pruning structured pruning (50%) with and without ORT int8.
Latency is the median ms per example at batch 1 and 64 (the flow's own ``measure_latency``, fixed
threads); ratios are against fp32 eager measured in the same run. Latency does not depend on the
weights, so the seeds are measured untrained on inputs of a typical length; quality is measured by
the compress flow (``--run RUN --candidate ID`` runs it on a trained candidate and prints its table).

    .venv/bin/python benchmarks/compression.py [--seeds transformer_small conv_text] [--threads 1]
    .venv/bin/python benchmarks/compression.py --run accept-g3c6 --candidate g03-c05
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")


class RandomStates:
    """Stands in for split features: ``batch(indices)`` gives padded states and a mask."""

    def __init__(self, count: int, length: int, dim: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.x = rng.standard_normal((count, length, dim)).astype(np.float32)
        self.lengths = rng.integers(length // 2, length + 1, size=count)

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, indices):
        indices = np.asarray(indices)
        width = int(self.lengths[indices].max())
        mask = np.arange(width)[None, :] < self.lengths[indices][:, None]
        return self.x[indices, :width] * mask[..., None], mask


def measure_seed(name: str, states: RandomStates, repeats: int, threads: int, folder: Path) -> list[dict]:
    import torch

    from evoformer.candidates.training import build, measure_latency, tensors
    from evoformer.compression import techniques
    from evoformer.compression.onnx_runtime import OnnxModel, export_onnx, quantize_onnx
    from evoformer.seeds import SEED_DIR

    torch.manual_seed(0)
    model = build((SEED_DIR / f"{name}.py").read_text(), states.x.shape[2], 3).eval()
    example = tensors(states, np.arange(2))
    rows = []

    def add(variant: str, forward, size: int) -> None:
        rows.append({"seed": name, "variant": variant, "size_bytes": size, **measure_latency(forward, states, repeats)})

    def attempt(variant: str, make) -> None:
        try:
            make()
        except Exception as exc:  # noqa: BLE001 - a path that does not work here is a result too
            rows.append({"seed": name, "variant": variant, "error": f"{type(exc).__name__}: {str(exc)[:90]}"})

    def onnx(variant: str, source, quantize: bool) -> None:
        path = export_onnx(source, example, folder / f"{name}-{variant}.onnx")
        if quantize:
            path = quantize_onnx(path, folder / f"{name}-{variant}-int8.onnx")
        add(variant, OnnxModel(path, threads), path.stat().st_size)

    def torch_ao() -> None:
        quantized = techniques.dynamic_int8(copy.deepcopy(model))
        with techniques.mha_fastpath_disabled():
            add("int8-torch.ao", quantized, techniques.serialized_bytes(quantized))

    def torchao() -> None:
        quantized = techniques.torchao_int8(copy.deepcopy(model))
        add("int8-torchao", quantized, techniques.serialized_bytes(quantized))

    add("fp32", model, techniques.serialized_bytes(model))
    attempt("int8-torch.ao", torch_ao)
    attempt("int8-torchao", torchao)
    attempt("onnx-fp32", lambda: onnx("onnx-fp32", model, False))
    attempt("int8-onnxruntime", lambda: onnx("int8-onnxruntime", model, True))

    def structured() -> None:
        pruned = techniques.structured_prune(model, example, 0.5, 3).eval()
        add("structured-50%", pruned, techniques.serialized_bytes(pruned))
        attempt("structured-50%+int8-onnxruntime", lambda: onnx("structured-50%+int8-onnxruntime", pruned, True))

    attempt("structured-50%", structured)
    reference = rows[0]
    for row in rows:
        if "error" not in row:
            row["speedup_b1"] = round(reference["batch1"] / row["batch1"], 2)
            row["speedup_b64"] = round(reference["batch64"] / row["batch64"], 2)
            row["size_x"] = round(reference["size_bytes"] / row["size_bytes"], 2)
    return rows


def seed_table(seeds: list[str], length: int, repeats: int, threads: int) -> None:
    import pandas as pd
    import torch

    torch.set_num_threads(threads)
    states = RandomStates(64, length, 384)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in seeds:
            rows += measure_seed(name, states, repeats, threads, Path(folder))
    print(
        f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, {threads} thread(s), "
        f"inputs of up to {length} tokens; ratios against fp32 eager of the same seed, same run"
    )
    frame = pd.DataFrame(rows).rename(columns={"batch1": "b1_ms", "batch64": "b64_ms"})
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print(frame.to_string(index=False, na_rep="-"))
    ok = frame.dropna(subset=["speedup_b1"])
    summary = ok[ok.variant != "fp32"].groupby("variant")[["speedup_b1", "speedup_b64", "size_x"]].median()
    print("\nmedian over seeds:\n" + summary.sort_values("speedup_b1", ascending=False).to_string())


def candidate_table(run: str, candidate: str, runs_dir: str) -> None:
    import json

    import pandas as pd

    from evoformer.baselines import macro_f1_table
    from evoformer.compression.config import CompressConfig
    from evoformer.compression.evaluate import compress_candidate, table_rows
    from evoformer.layout import RunLayout
    from flows.cli import baseline_lines
    from flows.train import split_labels

    run_dir = Path(runs_dir) / run
    summary = json.loads((run_dir / "summary.json").read_text())
    features = summary["features_path"]
    config = CompressConfig(quantizers=["torch_ao", "torchao", "onnxruntime"])
    report = compress_candidate(
        RunLayout(run_dir).candidate(candidate),
        features,
        split_labels(run_dir),
        RunLayout(run_dir).compression(f"{candidate}-benchmark"),
        config,
    )
    print(
        f"{candidate}: {report.status} {report.reason} "
        f"(best within the val budget: {report.best}; {report.wall_seconds:.0f} s)"
    )
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(pd.DataFrame(table_rows(report)).to_string(index=False, na_rep="-"))
    print("\n".join(baseline_lines(macro_f1_table(summary["baselines"]))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--seeds",
        nargs="+",
        default=["transformer_small", "transformer_base", "conv_text", "attention_pool_mlp", "recurrent_gru"],
    )
    parser.add_argument("--length", type=int, default=64, help="longest input in tokens (pairs average about 60)")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--run", help="also compress this run's candidate with the full flow settings")
    parser.add_argument("--candidate")
    parser.add_argument("--runs-dir", default="runs")
    args = parser.parse_args()
    seed_table(args.seeds, args.length, args.repeats, args.threads)
    if args.run and args.candidate:
        print()
        candidate_table(args.run, args.candidate, args.runs_dir)


if __name__ == "__main__":
    main()
