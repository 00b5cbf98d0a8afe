"""The LLM operator against a real local LLM server (marker ``llm``; ``make test-llm`` starts one).

Not part of the default suite (``-m "not slow and not llm and not dashboard"``): each test skips, saying why, when no
OpenAI-compatible server answers at ``$EVOFORMER_LLM_URL`` (default ``http://127.0.0.1:8080/v1``).
The kill test also needs the server to be the one ``scripts/llm_server.py`` started (it reads its
pid file, kills it and starts it again with the same model, port, context and threads).

On 2 shared cores with the 1.5B model, one generation of 4 children takes tens of minutes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

import pytest
from test_evolve_flow import TINY_SEED, evolve_params

from evoformer.evolution.operators import OperatorConfig
from evoformer.llm import LLMConfig

pytestmark = pytest.mark.llm

ROOT = Path(__file__).resolve().parents[1]
LLM_URL = os.environ.get("EVOFORMER_LLM_URL", "http://127.0.0.1:8080/v1").rstrip("/")
SERVER_ROOT = LLM_URL[: -len("/v1")] if LLM_URL.endswith("/v1") else LLM_URL
# A 2K-token prompt is read at about 20 tokens/s here, and 4 slots share 2 cores: the first token may take minutes.
FIRST_TOKEN_TIMEOUT_S = 900
MAX_TOKENS = 1536  # a whole program of the tiny seed's size is a few hundred tokens


def _get(url: str, timeout: float = 5.0) -> Any:
    """The JSON body of a 200 reply, else None."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return json.loads(reply.read()) if reply.status == 200 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


@dataclass
class LiveServer:
    model: str
    slots: int | None
    props: dict | None


def live_server() -> LiveServer:
    """The server at LLM_URL, or skip: its model (GET /v1/models) and slots (GET /props, else /slots)."""
    models = _get(f"{LLM_URL}/models")
    if not models or not models.get("data"):
        pytest.skip(
            f"no LLM server answers GET {LLM_URL}/models (start one with `make llm-server`, or set $EVOFORMER_LLM_URL)"
        )
    props = _get(f"{SERVER_ROOT}/props")
    slots = props.get("total_slots") if isinstance(props, dict) else None
    if slots is None:
        listed = _get(f"{SERVER_ROOT}/slots")
        slots = len(listed) if isinstance(listed, list) else None
    return LiveServer(model=models["data"][0]["id"], slots=slots, props=props if isinstance(props, dict) else None)


def _tiny_seed_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "seeds"
    folder.mkdir()
    (folder / "tiny.py").write_text(TINY_SEED)  # one short parent: short prompts, a fast seed training
    return folder


def _children(run_dir: Path) -> list[dict]:
    return [row for row in json.loads((run_dir / "lineage.json").read_text()) if row["generation"] > 0]


def _report(title: str, usage: dict, children: list[dict]) -> None:
    print(f"\n{title}")
    for key in (
        "requests",
        "retries",
        "tokens",
        "cache_hits",
        "failures",
        "children",
        "valid_children",
        "valid_rate",
        "repairs",
        "tokens_per_valid_child",
        "seconds_per_valid_child",
    ):
        print(f"  llm.{key} = {usage.get(key)}")
    for row in children:
        reason = (row.get("reason") or "")[:160]
        print(f"  {row['id']} {row['operator']} status={row['status']} repairs={row.get('repairs')} {reason}")


def _assert_outcomes(children: list[dict]) -> None:
    for row in children:
        assert row["operator"] in ("llm-mutation", "llm-crossover"), row
        assert row["status"] != "pending", row
        if row["status"] == "proposal_failed":
            assert row.get("reason"), row


def test_one_generation_of_four_children_with_the_real_model(
    prefect_harness, small_climate_fever, feature_cache_dir, tmp_path, monkeypatch
) -> None:
    from flows.evolve import evolve

    live = live_server()
    assert live.slots is not None, f"neither {SERVER_ROOT}/props nor /slots answered"
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    llm = LLMConfig(
        base_url=LLM_URL, model=live.model, timeout_s=FIRST_TOKEN_TIMEOUT_S, max_retries=2, max_tokens=MAX_TOKENS
    )
    params = evolve_params(
        small_climate_fever,
        feature_cache_dir,
        tmp_path / "runs",
        _tiny_seed_folder(tmp_path),
        "real-llm",
        generations=1,
        children=4,
        max_parallel=1,  # the server already uses both cores
        operator=OperatorConfig(kind="llm", llm=llm, repair_rounds=1),
    )
    started = time.monotonic()
    summary = evolve(params)
    elapsed = time.monotonic() - started

    assert summary["operator"] == "llm" and summary["generations"] == 1
    usage = summary["llm"]
    children = _children(Path(summary["run_dir"]))
    title = f"real LLM {live.model} ({live.slots} slot(s)): one generation of 4 children in {elapsed:.0f} s"
    _report(title, usage, children)
    assert len(children) == 4 and usage["children"] == 4
    assert usage["requests"] >= 4 and usage["tokens"] > 0, usage
    assert usage["cache_hits"] == 0, usage  # a fresh run folder: every reply came from the server
    _assert_outcomes(children)
    assert summary["candidates"]["total"] == 1 + 4


# ----------------------------------------------------------------------------- kill the server mid-generation


def _llm_common() -> ModuleType:
    spec = importlib.util.spec_from_file_location("llm_common", ROOT / "scripts" / "llm_common.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def our_server() -> tuple[int, dict]:
    """The pid and start settings of the server scripts/llm_server.py started at LLM_URL, or skip."""
    common = _llm_common()
    try:
        pid = int(common.pid_file().read_text().strip())
        state = json.loads(common.state_file().read_text())
    except (OSError, ValueError):
        pytest.skip(f"no pid/state file in {common.home()}: the server at {LLM_URL} is not scripts/llm_server.py's")
    url = urlparse(LLM_URL)
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if _alive(pid) else b""
    if b"llama-server" not in cmdline or url.port != state.get("port"):
        pytest.skip(f"the server at {LLM_URL} is not the llama-server of {common.pid_file()} (pid {pid})")
    models = {spec["name"]: key for key, spec in common.MODELS.items()}
    if state.get("model") not in models:
        pytest.skip(f"unknown model {state.get('model')!r} in {common.state_file()}: cannot restart it")
    state["model_key"] = models[state["model"]]
    return pid, state


def restart(state: dict) -> None:
    env = dict(
        os.environ,
        LLM_PORT=str(state["port"]),
        LLM_HOST=str(state.get("host", "127.0.0.1")),
        LLM_CTX=str(state.get("ctx", 16384)),
        LLM_THREADS=str(state.get("threads", 2)),
    )
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "llm_server.py"), "start", "--model", state["model_key"]],
        env=env,
        check=True,
        timeout=600,
    )


def _evolve(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("a") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "flows.cli", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,
        )


def _finish(proc: subprocess.Popen, log: Path, timeout: float, expect: int = 0) -> dict | None:
    """The JSON summary of a command that exited ``expect`` (None when that is not 0)."""
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == expect, f"evolve exited {proc.returncode}:\n{out[-2000:]}\n{log.read_text()[-4000:]}"
    return json.loads(out) if expect == 0 else None


def test_killing_the_server_mid_generation_records_failures_and_a_rerun_reuses_its_replies(
    small_climate_fever, feature_cache_dir, tmp_path
) -> None:
    """What the code does: a request whose server died is retried (connection refused), then its child
    is ``llm_unreachable``; the run stops before training the generation with one readable error
    (exit 2, no traceback) and saves nothing of it. The same command, once the server is back,
    proposes the generation again: the replies cached before the kill come from the disk cache
    (``llm.cache_hits``), the rest from the restarted server, and the run completes."""
    live = live_server()
    pid, state = our_server()
    runs = tmp_path / "runs"
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect-home"))
    env.pop("PREFECT_API_URL", None)
    env.pop("OPENAI_API_KEY", None)
    # The options of the console script; folds 1 and no cascade keep each training to one run.
    command = [
        "evolve",
        "--operator.kind",
        "llm",
        "--operator.llm.base_url",
        LLM_URL,
        "--operator.llm.model",
        live.model,
        "--operator.llm.timeout_s",
        str(FIRST_TOKEN_TIMEOUT_S),
        "--operator.llm.max_tokens",
        str(MAX_TOKENS),
        "--operator.llm.max_retries",
        "2",
        "--operator.llm.backoff_max_s",
        "2",
        "--operator.repair_rounds",
        "1",
        "--generations",
        "1",
        "--children",
        "4",
        "--seed",
        "7",
        "--seed-folder",
        str(_tiny_seed_folder(tmp_path)),
        "--max-epochs",
        "2",
        "--patience",
        "2",
        "--time-budget",
        "120",
        "--latency-repeats",
        "3",
        "--max-parallel",
        "1",
        "--evaluation.folds",
        "1",
        "--evaluation.cascade.enabled",
        "false",
        "--source",
        str(small_climate_fever),
        "--cache-dir",
        str(feature_cache_dir),
        "--runs-dir",
        str(runs),
        "--run-id",
        "killed-server",
        "--no-progress",
        "--json",
    ]
    run_dir = runs / "killed-server"
    cache = run_dir / "llm" / "cache"
    log = tmp_path / "evolve.log"

    proc = _evolve(command, env, log)
    try:
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline and proc.poll() is None and not list(cache.glob("*.json")):
            time.sleep(0.5)
        assert proc.poll() is None, f"evolve ended before a reply was cached:\n{log.read_text()[-4000:]}"
        assert list(cache.glob("*.json")), "no reply cached within an hour"
        cached_before = {p.name for p in cache.glob("*.json")}
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if not _alive(pid):
                break
            time.sleep(0.1)
        assert not _alive(pid)
        _finish(proc, log, timeout=3600, expect=2)
        stopped = log.read_text()  # the first command's stderr: the log was empty before it
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if not _alive(pid):
            restart(state)  # leave the server running as we found it, whatever happened

    print(f"\nkilled pid {pid} with {len(cached_before)} reply(s) cached; the run said:\n{stopped[-600:]}")
    message = [line for line in stopped.splitlines() if line.startswith("evoformer: error:")]
    assert message and "no LLM server answered" in message[0] and "run the same command again" in message[0], stopped
    assert "Traceback" not in stopped, stopped[-3000:]
    assert not (run_dir / "evolution" / "proposals-g01.json").exists()
    assert json.loads((run_dir / "evolution" / "state.json").read_text())["completed_generation"] == 0

    # The same command with the server back: the replies cached before the kill are reused.
    again = _finish(_evolve(command, env, log), log, timeout=3600)
    assert again is not None
    redone = _children(run_dir)
    _report("the same command with the server back", again["llm"], redone)
    assert again["generations"] == 1 and again["llm"]["cache_hits"] >= len(cached_before), again["llm"]
    assert cached_before <= {p.name for p in cache.glob("*.json")}
    assert len(redone) == 4
    _assert_outcomes(redone)
    assert not [r for r in redone if "LLM request failed" in (r.get("reason") or "")], redone
