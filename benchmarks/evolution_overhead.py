"""Evolution benchmark: orchestration overhead per candidate, and 2 parallel trainings against 1.

Runs the same offline evolution (same seed, so the same children) twice, each in its own
process with its own Prefect home (no cache shared), on the first claims of the shared data:
1. one training at a time, 2 torch threads each;
2. two trainings at a time, 1 torch thread each (the same 2 cores).
Training is bounded by epochs, not time, so both runs do the same work. Printed per run: the
training-phase wall time, and per candidate the orchestrator's wall time (Prefect task + sandbox
spawn, imports, hand-back) against the candidate's own work (training plus evaluation).

    python benchmarks/evolution_overhead.py [--claims 240] [--children 6] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "climate-fever" / "climate-fever.jsonl"


def run(label: str, common: list[str], work: Path, parallel: int, threads: int) -> dict:
    env = dict(
        os.environ,
        PREFECT_HOME=str(work / f"prefect-{label}"),
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    env.pop("PREFECT_API_URL", None)
    args = [*common, "--run-id", label, "--max-parallel", str(parallel), "--threads", str(threads)]
    proc = subprocess.run([sys.executable, "-m", "flows.cli", *args], env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    lineage = json.loads((work / "runs" / label / "lineage.json").read_text())
    split = overhead_split(work / "runs" / label)
    return {
        "label": label,
        "trained": len(split["work"]),
        **split,
        "population": [(r["id"], r["program_hash"], r["status"]) for r in lineage],
        "log": proc.stderr,
    }


def overhead_split(run_dir: Path) -> dict[str, list[float]]:
    """Per trained candidate: its own work (training plus evaluation: predictions and latency), the
    sandbox's overhead (spawn, imports, feature loading, hand-back) and Prefect's (task run,
    result persistence, the orchestrator's bookkeeping)."""
    out: dict[str, list[float]] = {"work": [], "sandbox": [], "prefect": []}
    for row in json.loads((run_dir / "lineage.json").read_text()):
        if row["status"] != "ok":
            continue
        metrics = json.loads((Path(row["folder"]) / "metrics.json").read_text())["metrics"]
        work = metrics["timings_s"]["train"] + metrics["timings_s"]["evaluate"]
        out["work"].append(work)
        out["sandbox"].append(metrics["wall_seconds"] - work)
        if row.get("wall_seconds"):
            out["prefect"].append(row["wall_seconds"] - metrics["wall_seconds"])
    return out


def print_split(label: str, split: dict[str, list[float]]) -> None:
    med = {k: statistics.median(v) if v else float("nan") for k, v in split.items()}
    total_work = sum(split["work"])
    print(
        f"{label:<10} median per candidate: work {med['work']:.2f} s, sandbox overhead {med['sandbox']:.2f} s, "
        f"Prefect overhead {med['prefect']:.2f} s; "
        f"sandbox overhead / work (sum) {sum(split['sandbox']) / total_work:.1%}"
    )


def phase_seconds(log: str, first: str, last: str) -> float:
    """Seconds between the first log line mentioning ``first`` and the last mentioning ``last``."""
    from datetime import datetime

    def stamp(line: str) -> float:
        return datetime.strptime(line[:12], "%H:%M:%S.%f").timestamp()

    lines = [line for line in log.splitlines() if len(line) > 12 and line[2] == ":" and line[5] == ":"]
    begin = next(stamp(line) for line in lines if first in line)
    end = [stamp(line) for line in lines if last in line][-1]
    return end - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--claims", type=int, default=240, help="first claims of the shared release (5 pairs each)")
    parser.add_argument("--children", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--analyse", metavar="RUN_DIR", help="only split the overhead of an existing evolve run (e.g. a full-data one)"
    )
    args = parser.parse_args()
    if args.analyse:
        print_split(Path(args.analyse).name, overhead_split(Path(args.analyse)))
        return
    work = Path(tempfile.mkdtemp(prefix="evoformer-bench-evolve-"))
    data = work / "data.jsonl"
    with SHARED.open() as src, data.open("w") as dst:
        for _, line in zip(range(args.claims), src, strict=False):
            dst.write(line)
    seeds = work / "seeds"
    seeds.mkdir()
    for name in ("attention_pool_mlp", "conv_text", "transformer_small"):
        (seeds / f"{name}.py").write_text((ROOT / "evoformer" / "seeds" / f"{name}.py").read_text())
    storage = ["--source", str(data), "--cache-dir", str(work / "cache"), "--runs-dir", str(work / "runs")]
    common = [
        *"evolve --operator offline --generations 1 --seed 1 --latency-repeats 5 --time-budget 3600".split(),
        *["--children", str(args.children), "--seed-folder", str(seeds)],
        *["--max-epochs", str(args.epochs), "--patience", str(args.epochs)],
        *storage,
        *["--no-progress", "--json"],
    ]
    # Warm the feature cache first so neither measured run pays for encoding.
    subprocess.run(
        [sys.executable, "-m", "flows.cli", "data", *storage, "--no-progress"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        env=dict(os.environ, PREFECT_HOME=str(work / "prefect-warm")),
    )
    serial = run("serial", common, work, parallel=1, threads=2)
    parallel = run("parallel", common, work, parallel=2, threads=1)
    if serial["population"] != parallel["population"]:
        print("WARNING: the two runs trained different children; the comparison is not like for like")

    print(f"{args.claims} claims, 3 seeds + {args.children} children, {args.epochs} epochs each (bounded by epochs)\n")
    for r in (serial, parallel):
        r["phase"] = phase_seconds(r["log"], "train-seed", "generation 1:")
        print(f"{r['label']:<10} {r['trained']} trainings, training phases {r['phase']:.1f} s")
        print_split(r["label"], r)
    print(
        "\nspeed-up of 2 parallel trainings (1 thread each) over 1 (2 threads): "
        f"{serial['phase'] / parallel['phase']:.2f}x"
    )
    print("The overhead per candidate is fixed (seconds); on these small jobs it dominates. Against a full-data")
    print("candidate, run: python benchmarks/evolution_overhead.py --analyse runs/<an evolve run on the shared data>")


if __name__ == "__main__":
    main()
