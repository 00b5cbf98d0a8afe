"""Search effect: does evolution with cross-validated fitness find a model that holds up on test?

Four arms on the shared data, each with the same search budget (wall clock for the generations
after the seeds) and the same search seeds, all with the offline operator and the same training:

    (a) seeds:  the seeds only; the best seed by CV fitness
    (b) random: the operator's children of uniformly drawn seeds (no parent selection), chosen by
                the same CV fitness and cascade as (d)
    (c) split:  evolution with the single val split (folds 1, no cascade): the old behaviour
    (d) cv:     evolution with 3-fold CV over train + val and the cascade (the defaults)

Each arm's choice is its summary's ``best`` (highest fitness): nothing here looks at test to
choose. The chosen programs are then trained afresh on the train split with 3 training seeds (as
the seeds of a 0-generation run: early stopping on val, two at a time) and each choice's test
macro-F1 is the mean over those seeds. Paired differences (d - a, d - b, d - c) are over search
seeds, with 95% t-intervals.
Majority and logistic-regression test lines come from the same splits.

Trainings are cached across arms (one Prefect home, the same feature folder), so the seeds train
once per fitness kind. Every number printed is measured by this run.

    python benchmarks/search_effect.py [--search-seeds 0 1 2] [--budget 300] [--time-budget 20]
        [--children 4] [--out benchmarks/out/search_effect.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from cli_runs import ROOT, cli

T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571}  # two-sided 95% t quantiles by df

ARMS: dict[str, list[str]] = {
    "a-seeds": ["--generations", "0"],
    "b-random": ["--selection.parents", "random_seeds"],
    "c-split": ["--evaluation.folds", "1", "--evaluation.cascade.enabled", "false"],
    "d-cv": [],
}


def interval(diffs: list[float]) -> str:
    mean = statistics.mean(diffs)
    if len(diffs) < 2:
        return f"{mean:+.3f}"
    half = T_975.get(len(diffs) - 1, 1.96) * statistics.stdev(diffs) / len(diffs) ** 0.5
    return f"{mean:+.3f} [{mean - half:+.3f}, {mean + half:+.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--search-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=float, default=300, help="search seconds per arm after the seeds")
    parser.add_argument("--time-budget", type=float, default=20, help="training seconds per candidate and fold")
    parser.add_argument("--children", type=int, default=4)
    parser.add_argument("--source", help="data file (default: the shared Climate-FEVER file)")
    parser.add_argument("--runs-dir", default=str(ROOT / "runs"))
    parser.add_argument("--cache-dir", help="feature cache (default: the project's)")
    parser.add_argument("--prefix", default="search")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "search_effect.json"))
    parser.add_argument("--searched", help="an earlier --out file: reuse its searches, only retrain and tabulate")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="evoformer-search-prefect-")
    env = dict(os.environ, PREFECT_HOME=home, DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env.pop("PREFECT_API_URL", None)
    common = ["--runs-dir", args.runs_dir, *(["--source", args.source] if args.source else [])]
    common += ["--cache-dir", args.cache_dir] if args.cache_dir else []
    evolve = [*common, "--operator", "offline", "--train.time_budget_s", str(args.time_budget)]
    search = ["--children", str(args.children), "--generations", "99", "--search_budget_s", str(args.budget)]
    started = time.perf_counter()
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.searched:
        runs = json.loads(Path(args.searched).read_text())["runs"]
    for arm, options in ARMS.items():
        if args.searched:
            break
        for seed in args.search_seeds:
            if arm == "a-seeds" and runs[arm]:  # no search seed changes the seeds' training: one run
                runs[arm].append(dict(runs[arm][0], search_seed=seed))
                continue
            run_id = f"{args.prefix}-{arm}-s{seed}"
            t0 = time.perf_counter()
            extra = [] if arm == "a-seeds" else search
            summary = cli(["evolve", *evolve, *extra, *options, "--seed", str(seed), "--run-id", run_id], env)
            best = summary["best"]
            runs[arm].append(
                {
                    "search_seed": seed,
                    "run_id": run_id,
                    "seconds": round(time.perf_counter() - t0, 1),
                    "chosen": best["id"],
                    "fitness": best["fitness"],
                    "params": best["params"],
                    "generations": summary["generations"],
                    "fully_evaluated": summary["fitness"]["fully_evaluated"],
                    "screened_out": summary["fitness"]["screened_out"],
                    "candidates": summary["candidates"]["total"],
                    "baselines": summary["baselines"],
                    "program": str(Path(summary["run_dir"]) / "programs" / f"{best['id']}.py"),
                }
            )
            print(f"{run_id}: chose {best['id']} fitness {best['fitness']} in {runs[arm][-1]['seconds']} s", flush=True)

    out.write_text(json.dumps({"args": vars(args), "runs": runs}, indent=2))  # the searches, before retraining
    # Every distinct chosen program, trained afresh as a seed of a 0-generation run on the train
    # split (early stopping on val, test measured), once per training seed, two at a time.
    texts = sorted({Path(r["program"]).read_text() for arm_runs in runs.values() for r in arm_runs})
    folder = Path(tempfile.mkdtemp(prefix="search-chosen-"))
    for n, text in enumerate(texts):
        (folder / f"chosen{n:02d}.py").write_text(text)
    retrained: dict[str, list[float]] = {text: [] for text in texts}
    for train_seed in args.train_seeds:
        summary = cli(
            ["evolve", *evolve, "--generations", "0", "--seed-folder", str(folder), "--train.seed", str(train_seed),
             "--evaluation.folds", "1", "--evaluation.cascade.enabled", "false",
             "--run-id", f"{args.prefix}-retrain-t{train_seed}"],
            env,
        )  # fmt: skip
        lineage = {row["id"]: row for row in json.loads(Path(summary["lineage"]).read_text())}
        for n, text in enumerate(texts):
            row = lineage[f"seed-chosen{n:02d}"]
            row = lineage.get(row.get("copy_of") or "", row)  # a near-copy of another choice: its result
            retrained[text].append(row["test_macro_f1"] if row["test_macro_f1"] is not None else float("nan"))
    for arm_runs in runs.values():
        for run in arm_runs:
            text = Path(run["program"]).read_text()
            run["test_per_training_seed"] = retrained[text]
            run["test"] = statistics.mean(retrained[text])

    baselines = runs["a-seeds"][0]["baselines"]
    seeds_note = f"mean of {len(args.train_seeds)} training seeds"
    print(f"\n| arm | chosen (per search seed) | fitness | test macro-F1 ({seeds_note}) | params | trained |")
    print("| --- | --- | --- | --- | --- | --- |")
    for arm, arm_runs in runs.items():
        chosen = ", ".join(r["chosen"] for r in arm_runs)
        fitness = ", ".join(f"{r['fitness']['mean']:.3f}" for r in arm_runs)
        tests = [r["test"] for r in arm_runs]
        params = ", ".join(str(r["params"]) for r in arm_runs)
        trained = ", ".join(f"{r['fully_evaluated']}+{r['screened_out']}" for r in arm_runs)
        print(f"| {arm} | {chosen} | {fitness} | {statistics.mean(tests):.3f} ({', '.join(f'{t:.3f}' for t in tests)}) "
              f"| {params} | {trained} |")  # fmt: skip
    for name in ("majority", "logreg"):
        if name in baselines:
            print(f"| {name} baseline | | | {baselines[name]['test']:.3f} | | |")
    print("\nPaired test differences over search seeds (95% t-interval):")
    d = [r["test"] for r in runs["d-cv"]]
    for other in ("a-seeds", "b-random", "c-split"):
        diffs = [x - y for x, y in zip(d, [r["test"] for r in runs[other]], strict=True)]
        print(f"  d-cv - {other}: {interval(diffs)}")
    print(f"\ntrained: fully evaluated + stopped by the cascade; total {time.perf_counter() - started:.0f} s")
    out.write_text(json.dumps({"args": vars(args), "runs": runs}, indent=2))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
