"""How long ``evoformer --help`` and ``evoformer <cmd> --help`` take: the median of 5 runs each, as
subprocess wall time, with the CPU time of the child beside it (wall time also counts waiting for a
busy machine's cores; CPU time does not). Also lists the heavy modules each one imported (none
expected: torch, Prefect, transformers and pandas load only once a command runs).

    python benchmarks/cli_startup.py [--runs 5] [--commands data evolve pipeline]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "prefect", "transformers", "pandas", "numpy", "openai")
LIMIT_S = 1.0


def evoformer() -> list[str]:
    script = Path(sys.executable).with_name("evoformer")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "flows.cli"]


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one run of ``argv`` (its output discarded)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=ROOT, env=dict(os.environ)
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heavy_imports(args: list[str]) -> list[str]:
    """The heavy modules in ``sys.modules`` after ``main(args)`` (the help goes to /dev/null)."""
    code = "\n".join(
        [
            "import contextlib, io, sys",
            "from flows.cli import main",
            "with contextlib.redirect_stdout(io.StringIO()):",
            "    try:",
            f"        main({args!r})",
            "    except SystemExit:",
            "        pass",
            f"print('heavy:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))",
        ]
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("heavy:"))
    return [m for m in line[len("heavy:") :].split(",") if m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--commands", nargs="*", default=["data", "train", "evolve", "pipeline", "compress", "synth"])
    args = parser.parse_args()
    print(
        f"evoformer startup, median of {args.runs} runs "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print(f"{'command':<28} {'wall s':>7} {'cpu s':>7}  heavy modules imported")
    worst = 0.0
    for command in [[], *([c] for c in args.commands)]:
        argv = [*command, "--help"]
        timed([*evoformer(), *argv])  # warm the file cache
        runs = [timed([*evoformer(), *argv]) for _ in range(args.runs)]
        wall, cpu = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        worst = max(worst, wall)
        print(
            f"{'evoformer ' + ' '.join(argv):<28} {wall:>7.2f} {cpu:>7.2f}  {', '.join(heavy_imports(argv)) or 'none'}"
        )
    verdict = "within" if worst <= LIMIT_S else "OVER"
    print(f"slowest: {worst:.2f} s wall, {verdict} the {LIMIT_S:.0f} s target")


if __name__ == "__main__":
    main()
