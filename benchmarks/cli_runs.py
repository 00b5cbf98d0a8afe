"""What the benchmarks that drive the console script share: one `evoformer` command's JSON summary.

Imported by the benchmark scripts (``python benchmarks/<name>.py`` puts this folder on sys.path).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(args: list[str], env: dict[str, str]) -> dict:
    """``evoformer ARGS --json --no-progress`` from the repository root; its summary, or exit with
    its output when it failed other than with status 1 (a run that reports failed candidates)."""
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", *args, "--json", "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(args[:3])} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)
