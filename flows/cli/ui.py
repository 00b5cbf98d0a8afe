"""``evoformer ui``: the Streamlit GUI on a local address (plain argparse: no parameter model)."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from evoformer.run_files import FILES_URL_ENV, FilesSettings


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


def _end_with_parent() -> None:
    """In the child, before exec: SIGTERM when its parent (the GUI, after its exec) ends."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def serve_run_files_beside(env: dict[str, str]) -> subprocess.Popen | None:
    """Start ``python -m flows.file_server`` for the runs folder (so that the dashboard's artifacts of
    the runs the GUI starts link to http URLs) and put its ``$EVOFORMER_FILES_URL`` /
    ``$EVOFORMER_FILES_ROOT`` into ``env``. Nothing when ``env`` names a URL already or the port is
    off. The child ends with this process (Linux), or with Ctrl-C (same process group)."""
    settings = FilesSettings.from_env(env)
    if settings.url or settings.port is None:
        return None
    command = [sys.executable, "-m", "flows.file_server", "--root", settings.root, "--port", str(settings.port)]
    child = subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, preexec_fn=_end_with_parent
    )
    assert child.stdout is not None
    line = child.stdout.readline()  # "export EVOFORMER_FILES_URL=... EVOFORMER_FILES_ROOT=..."
    child.stdout.close()  # it prints nothing more
    if not line.startswith("export "):
        print("the run files server did not start; artifacts will show file paths", file=sys.stderr)
        child.kill()
        return None
    env.update(word.split("=", 1) for word in shlex.split(line)[1:])
    print(f"run files (Pareto plots, reports) on {env[FILES_URL_ENV]}/", file=sys.stderr, flush=True)
    return child


def run_ui(argv: list[str]) -> int:
    """Replace this process with the Streamlit server (so signals reach it directly)."""
    args = ui_parser().parse_args(argv)
    env = dict(os.environ, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", DO_NOT_TRACK="1")
    if args.runs_dir:
        env["EVOFORMER_RUNS"] = args.runs_dir
    if args.cache_dir:
        env["EVOFORMER_CACHE"] = args.cache_dir
    serve_run_files_beside(env)
    print(f"EvoFormer GUI on http://{args.address}:{args.port}", file=sys.stderr, flush=True)
    command = streamlit_command(args)
    os.execve(command[0], command, env)
    return 1  # not reached
