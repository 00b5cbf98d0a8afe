"""The ``evoformer data`` command: JSON summary, errors, ephemeral Prefect and a real server."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


from flows.cli import main

# Prefect's console handler keeps the sys.stderr it was created with, so pytest's capsys (whose
# streams are closed after each test) cannot be used here; redirect into our own buffers instead.


def run_main(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()

REQUIRED_KEYS = [
    ("splits", "train", "pairs"), ("splits", "train", "claims"), ("splits", "val", "pairs"), ("splits", "val", "claims"),
    ("splits", "test", "pairs"), ("splits", "test", "claims"), ("claim_overlap",), ("fingerprints",), ("features_path",),
    ("baselines", "majority", "val", "macro_f1"), ("baselines", "majority", "test", "macro_f1"),
    ("baselines", "logreg", "val", "macro_f1"), ("baselines", "logreg", "test", "macro_f1"),
]


def _dig(obj: dict, path: tuple[str, ...]):
    for key in path:
        obj = obj[key]
    return obj


def _check_summary(summary: dict) -> None:
    for path in REQUIRED_KEYS:
        _dig(summary, path)
    assert summary["claim_overlap"] == 0
    assert set(summary["fingerprints"]) == {"train", "val", "test"}


def test_data_json_in_process(prefect_harness, small_climate_fever, feature_cache_dir, tmp_path) -> None:
    args = ["data", "--source", str(small_climate_fever), "--runs-dir", str(tmp_path), "--cache-dir", str(feature_cache_dir), "--run-id", "cli", "--no-progress", "--json"]
    code, out, _ = run_main(args)
    assert code == 0
    summary = json.loads(out)
    _check_summary(summary)
    assert summary["run_dir"] == str((tmp_path / "cli").resolve())
    assert (tmp_path / "cli" / "summary.json").is_file()


def test_human_output_shows_majority_line(prefect_harness, small_climate_fever, feature_cache_dir, tmp_path) -> None:
    code, out, _ = run_main(["data", "--source", str(small_climate_fever), "--runs-dir", str(tmp_path), "--cache-dir", str(feature_cache_dir), "--no-progress"])
    assert code == 0
    assert "claim overlap between splits: 0" in out
    assert any(line.startswith("majority   test") for line in out.splitlines())
    assert any(line.startswith("logreg     test") for line in out.splitlines())


def test_bad_source_exits_2_with_message(prefect_harness, tmp_path) -> None:
    code, _, err = run_main(["data", "--source", str(tmp_path / "nope.csv"), "--runs-dir", str(tmp_path)])
    assert code == 2
    assert "does not exist" in err


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


def _cli(tmp_path: Path, source: Path, cache: Path, env: dict[str, str]) -> dict:
    exe = Path(sys.executable).with_name("evoformer")
    cmd = [str(exe), "data", "--source", str(source), "--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(cache), "--no-progress", "--json"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_console_script_with_ephemeral_prefect(small_climate_fever, feature_cache_dir, tmp_path) -> None:
    summary = _cli(tmp_path, small_climate_fever, feature_cache_dir, _clean_env(tmp_path))
    _check_summary(summary)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_console_script_against_prefect_server(small_climate_fever, feature_cache_dir, tmp_path) -> None:
    env = _clean_env(tmp_path)
    port = _free_port()
    prefect = Path(sys.executable).with_name("prefect")
    server = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, "prefect server exited"
            assert time.monotonic() < deadline, "prefect server did not become healthy in 120 s"
            time.sleep(1)
        summary = _cli(tmp_path, small_climate_fever, feature_cache_dir, dict(env, PREFECT_API_URL=api))
        _check_summary(summary)
        request = urllib.request.Request(f"{api}/flow_runs/filter", data=b"{}", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            runs = json.loads(response.read())
        assert [r["state_type"] for r in runs] == ["COMPLETED"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
