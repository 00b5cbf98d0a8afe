"""Synthetic-data effect: the same seed program trained with and without the augmented train set.

Runs `evoformer synth` (gates the synthetic files against the real claim-level splits) unless an
augmented set is given, then `evoformer train` of one seed program on the real train split and on
the augmented one, with the same train seeds, each in the sandbox. Val and test are the same real
splits in both conditions. Training is bounded by epochs (early stopping on val), with a time
budget high enough not to bind, so both conditions get the same number of passes. Prints per-run
metrics, mean and standard deviation per condition, and the paired test macro-F1 difference
(augmented - real) with its spread, plus the logistic-regression baseline on both train sets.

    python benchmarks/synthetic_effect.py [--program evoformer/seeds/attention_pool_mlp.py]
        [--seeds 0 1 2] [--max-epochs 8] [--augmented PATH | --synth-args "--verify-action filter"]
        [--prefix effect] [--out benchmarks/out/synthetic_effect.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from cli_runs import ROOT, cli


def spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--program", default=str(ROOT / "evoformer" / "seeds" / "attention_pool_mlp.py"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-epochs", type=int, default=8)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--time-budget", type=float, default=1800, help="seconds per training (high: epochs bind)")
    parser.add_argument("--augmented", help="augmented set folder (default: run `evoformer synth` first)")
    parser.add_argument(
        "--synth-args", default="", help="extra `evoformer synth` options, e.g. '--verify-action filter'"
    )
    parser.add_argument("--runs-dir", default=str(ROOT / "runs"))
    parser.add_argument("--prefix", default="effect")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "synthetic_effect.json"))
    parser.add_argument(
        "--previous",
        help="an earlier --out file: its runs with the same settings are reused, not retrained "
        "(training is deterministic on CPU)",
    )
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="evoformer-effect-prefect-")
    env = dict(os.environ, PREFECT_HOME=home, DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env.pop("PREFECT_API_URL", None)
    common = ["--runs-dir", args.runs_dir]
    started = time.perf_counter()
    augmented = args.augmented
    synth = None
    if not augmented:
        synth = cli(["synth", *common, "--run-id", f"{args.prefix}-synth", *args.synth_args.split()], env)
        augmented = synth["augmented"]["path"]
        print(
            f"synth: kept {synth['kept']} synthetic pairs "
            f"({synth['synthetic_fraction_of_train']:.1%} of train) -> {augmented}",
            flush=True,
        )

    settings = {
        "program": Path(args.program).name,
        "program_sha256": hashlib.sha256(Path(args.program).read_bytes()).hexdigest()[:16],
        "max_epochs": args.max_epochs,
        "patience": args.patience,
        "time_budget": args.time_budget,
        "augmented": Path(augmented).name,
    }
    previous: dict[tuple[str, int], dict] = {}
    if args.previous:
        earlier = json.loads(Path(args.previous).read_text())
        before = earlier.get("settings") or {}
        same_training = {k: v for k, v in before.items() if k != "augmented"} == {
            k: v for k, v in settings.items() if k != "augmented"
        }
        for r in earlier["rows"]:  # real runs need the same training settings; augmented ones also the same set
            if (
                r["status"] == "ok"
                and same_training
                and (r["condition"] == "real" or before.get("augmented") == settings["augmented"])
            ):
                previous[(r["condition"], r["seed"])] = r
        if not previous:
            print(f"not reusing {args.previous}: other settings ({before})", flush=True)
    train_args = [
        "--max-epochs",
        str(args.max_epochs),
        "--patience",
        str(args.patience),
        "--time-budget",
        str(args.time_budget),
    ]
    rows = []
    for condition in ("real", "augmented"):
        for seed in args.seeds:
            if (condition, seed) in previous:
                rows.append(previous[(condition, seed)] | {"reused": True})
                print(f"{condition} seed {seed}: reused from {args.previous}", flush=True)
                continue
            extra = ["--augmented", augmented] if condition == "augmented" else []
            t0 = time.perf_counter()
            out = cli(
                [
                    "train",
                    args.program,
                    *common,
                    "--run-id",
                    f"{args.prefix}-{condition}-s{seed}",
                    "--train-seed",
                    str(seed),
                    *train_args,
                    *extra,
                ],
                env,
            )
            m = out["metrics"] or {}
            row = {
                "condition": condition,
                "seed": seed,
                "status": out["status"],
                "epochs": m.get("epochs"),
                "best_epoch": m.get("best_epoch"),
                "val_macro_f1": m.get("val", {}).get("macro_f1"),
                "test_macro_f1": m.get("test", {}).get("macro_f1"),
                "train_seconds": m.get("train_seconds"),
                "wall_seconds": round(time.perf_counter() - t0, 1),
                "baselines": out["baselines"],
            }
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "baselines"}), flush=True)

    ok = [r for r in rows if r["status"] == "ok"]
    by = {c: {r["seed"]: r for r in ok if r["condition"] == c} for c in ("real", "augmented")}
    paired = sorted(set(by["real"]) & set(by["augmented"]))
    diffs = [by["augmented"][s]["test_macro_f1"] - by["real"][s]["test_macro_f1"] for s in paired]
    val_diffs = [by["augmented"][s]["val_macro_f1"] - by["real"][s]["val_macro_f1"] for s in paired]
    lines = [
        f"program {Path(args.program).name}, seeds {args.seeds}, "
        f"max {args.max_epochs} epochs (patience {args.patience}), "
        f"augmented set {Path(augmented).name}" + (f" (synth {args.synth_args})" if args.synth_args else ""),
        "",
        "condition  seed  epochs(best)  val_macro_f1  test_macro_f1  train_s",
    ]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"{r['condition']:<10} {r['seed']:>4}  {r['status']}")
            continue
        lines.append(
            f"{r['condition']:<10} {r['seed']:>4}  {r['epochs']:>6} ({r['best_epoch']})  {r['val_macro_f1']:>12.4f}  "
            f"{r['test_macro_f1']:>13.4f}  {r['train_seconds']:>7.1f}" + ("  (reused)" if r.get("reused") else "")
        )
    lines.append("")
    for c in ("real", "augmented"):
        if by[c]:
            lines.append(
                f"{c:<10} mean ± std   val {spread([r['val_macro_f1'] for r in by[c].values()])}   "
                f"test {spread([r['test_macro_f1'] for r in by[c].values()])}"
            )
    if diffs:
        lines.append(
            f"difference (augmented - real), paired by seed: test {spread(diffs)} "
            f"(per seed {', '.join(f'{d:+.4f}' for d in diffs)}; min {min(diffs):+.4f}, max {max(diffs):+.4f}); "
            f"val {spread(val_diffs)}"
        )
    for c in ("real", "augmented"):
        first = next((r for r in rows if r["condition"] == c), None)
        if first and "logreg" in first["baselines"]:
            b = first["baselines"]["logreg"]
            lines.append(f"logreg baseline on {c} train: val {b['val']:.4f}  test {b['test']:.4f}")
    lines.append(f"total wall time {time.perf_counter() - started:.0f} s")
    table = "\n".join(lines)
    print("\n" + table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "settings": settings,
                "rows": rows,
                "diffs": diffs,
                "augmented": augmented,
                "synth": synth and {k: synth[k] for k in ("kept", "kept_labels", "gates")},
                "table": table,
            },
            indent=2,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
