"""Sandbox overhead (spawn, imports, loading, hand-back) as a fraction of a candidate's training.

Trains one typical candidate (default: the transformer_small seed, default training budget) on the
shared Climate-FEVER features through the full sandbox, then splits the orchestrator's wall clock:

  overhead = wall - train - evaluate     (evaluate = test predictions + latency measurement)

and prints overhead / train (goal: 5% or less). It also times an empty sandbox start
(bubblewrap + Python + torch import) on its own. Usage:
  python benchmarks/sandbox_overhead.py [--seed-file PATH] [--max-train-pairs N] [--epochs N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from evoformer.baselines import label_ids
from evoformer.candidates.evaluate import evaluate_candidate
from evoformer.candidates.job import TrainConfig
from evoformer.candidates.program import CandidateProgram
from evoformer.data import DataSourceConfig, load_pairs, make_splits
from evoformer.features import EncoderConfig, featurize_splits
from evoformer.sandbox.limits import SandboxLimits
from evoformer.sandbox.runner import run_sandboxed
from evoformer.seeds import SEED_DIR


def empty_sandbox_seconds(repeats: int = 3) -> float:
    """Median wall time of a sandbox that imports torch and exits."""
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            run = run_sandboxed("evoformer.sandbox.empty", Path(folder), SandboxLimits(timeout_s=120))
            times.append(time.perf_counter() - start)
            assert run.returncode == 0, run.stderr_tail
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed-file", default=str(SEED_DIR / "transformer_small.py"))
    parser.add_argument("--cache-dir", default=".cache/evoformer")
    parser.add_argument("--max-train-pairs", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=TrainConfig().max_epochs)
    args = parser.parse_args()

    splits = make_splits(load_pairs(DataSourceConfig()).frame)
    features = featurize_splits(splits.frames, splits.fingerprints, EncoderConfig(), args.cache_dir)
    labels = {name: label_ids(frame["label"]) for name, frame in splits.frames.items()}
    program = CandidateProgram.from_file(args.seed_file)
    config = TrainConfig(max_epochs=args.epochs, max_train_pairs=args.max_train_pairs)

    empty = empty_sandbox_seconds()
    with tempfile.TemporaryDirectory() as folder:
        result = evaluate_candidate(program, features.path, labels, Path(folder) / "cand", config, SandboxLimits())
    assert result.status == "ok", f"{result.status}: {result.reason}\n{result.stderr_tail}"
    m = result.metrics
    train, evaluate = m.timings_s["train"], m.timings_s["evaluate"]
    overhead = m.wall_seconds - train - evaluate
    print(f"candidate {program.name}: {m.params:,} params, {m.epochs} epochs, isolation {result.isolation}")
    print(f"wall {m.wall_seconds:.2f} s = train {train:.2f} s + evaluate {evaluate:.2f} s + overhead {overhead:.2f} s")
    print(
        f"  of which in the worker: setup {m.timings_s['setup']:.2f} s (imports, features, build), "
        f"save {m.timings_s['save']:.3f} s"
    )
    print(f"empty sandbox start (bwrap + python + torch import): {empty:.2f} s")
    print(f"overhead / train time: {100 * overhead / train:.1f}%  (goal <= 5%)")


if __name__ == "__main__":
    main()
