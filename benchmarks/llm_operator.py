"""LLM operator benchmark: how many of a real local model's children are valid, and at what cost.

For each model (``scripts/llm_server.py``'s 1.5b and 0.5b Qwen2.5-Coder) and each setting
(``full``: whole programs with the default repair rounds; ``diff``: ``--operator.edit_mode diff``;
``full-norepair``: ``--operator.repair_rounds 0``, not run by default), one arm runs
``evoformer evolve --operator llm --generations 1 --children N`` on the first claims of the shared
Climate-FEVER file (a temporary slice, as the ``small_climate_fever`` test fixture makes it), with
short training (``--max-train-pairs``, 2 epochs), one fold and no cascade. A valid child trained ok
and is no copy of its parent (the summary's ``llm.valid_children``).

"Without repair" is read from the same arm: the children valid with 0 repair rounds. A repair round
only follows a failed check, so those children are exactly the ones that arm would have made with
``--operator.repair_rounds 0`` (the first request and its reply are the same); running that arm
separately would only spend another hour of the 2 cores on the same first replies.

Each arm reuses nothing from another: its own run id, run folder, feature cache and Prefect home, and
a freshly started server (``scripts/llm_server.py stop`` then ``start`` with ``LLM_MODEL`` and
``--metrics``), so no reply, KV cache or training is shared. The server found running at the start is
restarted with its model at the end (else the server is left stopped).

Printed per arm: children, valid, valid rate, repairs per valid child, tokens and seconds
(the children's proposal wall clock) per valid child, and two throughputs: the server's generation
tokens/s from llama-server's ``GET /metrics`` (``llamacpp:predicted_tokens_seconds``, its average over
the arm's requests) and, computed here, all tokens (prompt + completion, the summary's ``llm.tokens``)
divided by the children's summed proposal seconds. Written to ``benchmarks/out/llm_operator.json``.

    python benchmarks/llm_operator.py [--children 6] [--models 1.5b,0.5b] [--settings full,diff]
                                      [--claims 80] [--max-train-pairs 200] [--seeds attention_pool_mlp,conv_text]

It takes hours on 2 shared cores (a 1.5B reply takes minutes there, see docs/llm-server.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "climate-fever" / "climate-fever.jsonl"
SERVER = ROOT / "scripts" / "llm_server.py"
OUT = ROOT / "benchmarks" / "out" / "llm_operator.json"
MODEL_NAMES = {"1.5b": "qwen2.5-coder-1.5b-instruct", "0.5b": "qwen2.5-coder-0.5b-instruct"}
SETTINGS = {
    "full": ["--operator.edit_mode", "full"],
    "full-norepair": ["--operator.edit_mode", "full", "--operator.repair_rounds", "0"],
    "diff": ["--operator.edit_mode", "diff"],
}


def server(*args: str, model: str | None = None, port: int = 8080) -> subprocess.CompletedProcess:
    env = dict(os.environ, LLM_PORT=str(port))
    if model:
        env["LLM_MODEL"] = model
    return subprocess.run([sys.executable, str(SERVER), *args], env=env, capture_output=True, text=True)


def running_model() -> str | None:
    """The model key of the server scripts/llm_server.py runs now, or None."""
    status = server("status")
    if status.returncode != 0:
        return None
    found = re.search(r"model (\S+),", status.stdout)
    return next((key for key, name in MODEL_NAMES.items() if found and found.group(1) == name), None)


def metrics(port: int) -> dict[str, float]:
    """llama-server's Prometheus counters (``--metrics``), ``llamacpp:`` prefix dropped; {} if none."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
    except (urllib.error.URLError, OSError):
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("llamacpp:"):
            name, _, value = line.partition(" ")
            try:
                out[name.removeprefix("llamacpp:")] = float(value)
            except ValueError:
                pass
    return out


def run_arm(model: str, setting: str, args: argparse.Namespace, data: Path, seeds: Path, work: Path) -> dict:
    label = f"{model}-{setting}"
    arm = work / label
    arm.mkdir()
    server("stop", port=args.port)
    started = server("start", "--model", model, "--", "--metrics", model=model, port=args.port)
    if started.returncode != 0:
        raise SystemExit(f"{label}: the server did not start:\n{started.stdout}\n{started.stderr}")
    env = dict(os.environ, PREFECT_HOME=str(arm / "prefect-home"), DO_NOT_TRACK="1")
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.pop("PREFECT_API_URL", None)
    env.pop("OPENAI_API_KEY", None)
    command = [
        *["evolve", "--operator.kind", "llm", "--generations", "1", "--children", str(args.children)],
        *["--operator.llm.base_url", f"http://127.0.0.1:{args.port}/v1", "--operator.llm.model", MODEL_NAMES[model]],
        *["--operator.llm.timeout_s", str(args.timeout)],
        *SETTINGS[setting],
        *["--seed", str(args.seed), "--seed-folder", str(seeds)],
        *["--max-train-pairs", str(args.max_train_pairs), "--max-epochs", "2", "--patience", "2"],
        *["--time-budget", "300", "--latency-repeats", "3", "--max-parallel", "1"],
        *["--evaluation.folds", "1", "--evaluation.cascade.enabled", "false"],
        *["--source", str(data), "--cache-dir", str(arm / "cache"), "--runs-dir", str(arm / "runs")],
        *["--run-id", label, "--no-progress", "--json"],
    ]
    begin = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", *command], env=env, capture_output=True, text=True, cwd=ROOT
    )
    wall = time.monotonic() - begin
    counters = metrics(args.port)
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout)
    usage = summary["llm"]
    lineage = json.loads((arm / "runs" / label / "lineage.json").read_text())
    children = [row for row in lineage if str(row.get("operator", "")).startswith("llm-")]
    seconds = sum(row.get("proposal_seconds") or 0.0 for row in children)
    unrepaired = sum(row["status"] == "ok" and not row.get("repairs") for row in children)
    return {
        "model": model,
        "setting": setting,
        "children": usage["children"],
        "valid": usage["valid_children"],
        "valid_rate": usage["valid_rate"],
        "valid_without_repair": unrepaired,
        "valid_rate_without_repair": round(unrepaired / len(children), 4) if children else None,
        "repairs_per_valid_child": usage["repairs"],
        "tokens_per_valid_child": usage["tokens_per_valid_child"],
        "seconds_per_valid_child": usage["seconds_per_valid_child"],
        "requests": usage["requests"],
        "tokens": usage["tokens"],
        "cache_hits": usage["cache_hits"],
        "proposal_seconds": round(seconds, 1),
        "server_generation_tokens_per_s": counters.get("predicted_tokens_seconds"),
        "server_prompt_tokens_per_s": counters.get("prompt_tokens_seconds"),
        "tokens_per_proposal_second": round(usage["tokens"] / seconds, 2) if seconds else None,
        "statuses": {s: sum(row["status"] == s for row in children) for s in sorted({r["status"] for r in children})},
        "wall_seconds": round(wall, 1),
        "wall_seconds_per_valid_child": round(wall / usage["valid_children"], 1) if usage["valid_children"] else None,
        "metrics": counters,
    }


def wilson(valid: int, children: int, z: float = 1.96) -> str:
    """The 95% Wilson score interval of a valid rate, as ``[lo, hi]`` (6 children give a wide one)."""
    if not children:
        return "-"
    rate = valid / children
    centre = (rate + z * z / (2 * children)) / (1 + z * z / children)
    half = z * (rate * (1 - rate) / children + z * z / (4 * children * children)) ** 0.5 / (1 + z * z / children)
    return f"[{max(0.0, centre - half):.2f}, {min(1.0, centre + half):.2f}]"


def fmt(value: object, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def print_table(rows: list[dict]) -> None:
    head = (
        f"{'model':<5} {'setting':<13} {'children':>8} {'valid':>5} {'rate':>5} {'95% interval':>12} {'no-repair':>9} "
        f"{'repairs/v':>9} "
        f"{'tokens/v':>9} {'s/v':>7} {'wall s/v':>8} {'gen tok/s':>9} {'tok/prop s':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['model']:<5} {r['setting']:<13} {r['children']:>8} {r['valid']:>5} {fmt(r['valid_rate'], '.2f'):>5} "
            f"{wilson(r['valid'], r['children']):>12} {fmt(r['valid_rate_without_repair'], '.2f'):>9} "
            f"{fmt(r['repairs_per_valid_child'], '.2f'):>9} {fmt(r['tokens_per_valid_child'], '.0f'):>9} "
            f"{fmt(r['seconds_per_valid_child'], '.0f'):>7} {fmt(r.get('wall_seconds_per_valid_child'), '.0f'):>8} "
            f"{fmt(r['server_generation_tokens_per_s'], '.2f'):>9} "
            f"{fmt(r['tokens_per_proposal_second'], '.2f'):>10}"
        )
    print(
        "\n95% interval: Wilson's, of the valid rate. no-repair: the valid rate counting only the children valid "
        "with 0 repair rounds. /v: per valid child; "
        "s/v: the children's proposal seconds summed (requests overlap on a server with several slots); wall s/v: "
        "the arm's whole wall clock (data, seed and child trainings included) per valid child. "
        "gen tok/s: llama-server's /metrics (llamacpp:predicted_tokens_seconds). "
        "tok/prop s: all tokens (prompt + completion) / the children's summed proposal seconds (computed)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--children", type=int, default=6)
    parser.add_argument("--models", default="1.5b,0.5b")
    parser.add_argument("--settings", default="full,diff", help=f"of {', '.join(SETTINGS)}")
    parser.add_argument("--claims", type=int, default=80, help="first claims of the shared release (5 pairs each)")
    parser.add_argument("--max-train-pairs", type=int, default=200)
    parser.add_argument("--seeds", default="attention_pool_mlp,conv_text", help="seed programs (evoformer/seeds)")
    parser.add_argument("--seed", type=int, default=1, help="the evolution's seed (the same children planned per arm)")
    parser.add_argument("--timeout", type=float, default=900, help="operator.llm.timeout_s (first token)")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    settings = [s for s in args.settings.split(",") if s]
    unknown = [m for m in models if m not in MODEL_NAMES] + [s for s in settings if s not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown model or setting: {', '.join(unknown)}")
    if not SHARED.is_file():
        raise SystemExit(f"shared data not found at {SHARED}")

    work = Path(tempfile.mkdtemp(prefix="evoformer-bench-llm-"))
    data = work / "climate-fever-small.jsonl"
    with SHARED.open() as src, data.open("w") as dst:
        for _, line in zip(range(args.claims), src, strict=False):
            dst.write(line)
    seeds = work / "seeds"
    seeds.mkdir()
    for name in args.seeds.split(","):
        (seeds / f"{name}.py").write_text((ROOT / "evoformer" / "seeds" / f"{name}.py").read_text())

    found = running_model()
    rows: list[dict] = []
    try:
        for model in models:
            for setting in settings:
                print(f"== {model} {setting}: {args.children} children", flush=True)
                rows.append(run_arm(model, setting, args, data, seeds, work))
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "metrics"}), flush=True)
    finally:
        server("stop", port=args.port)
        if found:
            server("start", model=found, port=args.port)
        if rows:
            OUT.parent.mkdir(parents=True, exist_ok=True)
            OUT.write_text(json.dumps({"settings": vars(args), "arms": rows}, indent=1) + "\n")
    print()
    print_table(rows)
    print(f"\nwritten to {OUT} (run folders under {work})")


if __name__ == "__main__":
    main()
