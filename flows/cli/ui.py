"""``evoformer ui``: the Streamlit GUI on a local address (plain argparse: no parameter model)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def ui_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evoformer ui", description="Start the GUI (a Streamlit app): upload seeds, evolve, watch, compress."
    )
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--runs-dir", help="root of run folders (default: $EVOFORMER_RUNS or ./runs)")
    parser.add_argument("--cache-dir", help="feature cache (default: $EVOFORMER_CACHE or ./.cache/evoformer)")
    return parser


def streamlit_command(args: argparse.Namespace) -> list[str]:
    """``streamlit run ui/app.py`` headless, telemetry off, on the given address and port."""
    import ui

    app = Path(ui.__file__).with_name("app.py")
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--server.port",
        str(args.port),
        "--server.address",
        args.address,
    ]


def run_ui(argv: list[str]) -> int:
    """Replace this process with the Streamlit server (so signals reach it directly)."""
    args = ui_parser().parse_args(argv)
    env = dict(os.environ, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", DO_NOT_TRACK="1")
    if args.runs_dir:
        env["EVOFORMER_RUNS"] = args.runs_dir
    if args.cache_dir:
        env["EVOFORMER_CACHE"] = args.cache_dir
    print(f"EvoFormer GUI on http://{args.address}:{args.port}", file=sys.stderr, flush=True)
    command = streamlit_command(args)
    os.execve(command[0], command, env)
    return 1  # not reached
