"""A canary API key typed into the GUI reaches the LLM server, and nothing else.

The key (``sk-canary-<random>``) is entered in the page (AppTest), the LLM operator points at the
loopback scripted server, and a tiny local run is started from the Evolve button. The server must
see the key in its Authorization header; afterwards the key must appear nowhere on disk: not in
the run folder (summary, lineage, LLM cache and usage, the child's log), the Prefect home
(database, results, logs), the feature cache or test artifacts, nor in this process's output.
Also holds the shared fixtures of the GUI's live tests (``primed_data``, the tiny seed).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from llm_server import Reply

pytestmark = pytest.mark.integration  # trains in the sandbox, runs flows or starts servers

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "ui" / "app.py")
TINY_SEED = """import torch.nn as nn


class Tiny(nn.Module):
    def __init__(self, input_dim: int, num_classes: int, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x, mask):
        m = mask.unsqueeze(-1).float()
        return self.net((x * m).sum(1) / m.sum(1).clamp(min=1.0))


def build_model(input_dim: int, num_classes: int) -> nn.Module:
    return Tiny(input_dim, num_classes)
"""
TINY_CHILD = TINY_SEED.replace("hidden: int = 32", "hidden: int = 16")
_PRIMED: dict[str, tuple[Path, Path]] = {}


@pytest.fixture(scope="session")
def primed_data(small_climate_fever: Path, feature_cache_dir: Path, tmp_path_factory) -> tuple[Path, Path]:
    """(data file, feature cache) with features, sentence embeddings and baselines already computed
    by `evoformer data` in a child process sharing this session's Prefect home, so the GUI's runs
    (child processes too) reuse them instead of spending minutes on them."""
    key = str(small_climate_fever)
    if key not in _PRIMED:  # one priming per session, even when several modules use this fixture
        runs = tmp_path_factory.mktemp("primer-runs")
        cmd = [
            str(Path(sys.executable).with_name("evoformer")),
            "data",
            "--source",
            str(small_climate_fever),
            "--cache-dir",
            str(feature_cache_dir),
            "--runs-dir",
            str(runs),
            "--run-id",
            "primer",
            "--no-progress",
            "--json",
        ]
        done = subprocess.run(cmd, env=dict(os.environ), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        _PRIMED[key] = (small_climate_fever, feature_cache_dir)
    return _PRIMED[key]


def wait_for(process: subprocess.Popen, timeout: float) -> int:
    """The child's exit status; it is killed (with its group) if it runs past ``timeout``."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        raise


def files_containing(roots: list[Path], needle: bytes) -> list[str]:
    """Every file under ``roots`` whose bytes contain ``needle`` (symlinks not followed)."""
    hits = []
    for root in roots:
        if not root.exists():
            continue
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                try:
                    if needle in path.read_bytes():
                        hits.append(str(path))
                except OSError:
                    continue
    return hits


def test_canary_key_reaches_the_llm_and_nothing_else(
    primed_data, scripted_llm_server, tmp_path: Path, monkeypatch, capfd
) -> None:
    from streamlit.testing.v1 import AppTest

    import ui.launch

    source, cache = primed_data
    canary = f"sk-canary-{secrets.token_hex(12)}"
    server = scripted_llm_server(
        default=lambda request: Reply(content=f"A smaller hidden layer.\n```python\n{TINY_CHILD}```")
    )
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "tiny.py").write_text(TINY_SEED)
    runs = tmp_path / "runs"
    monkeypatch.setenv("EVOFORMER_RUNS", str(runs))
    monkeypatch.setattr(ui.launch, "prefect_server_url", lambda: None)

    started = time.perf_counter()
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.text_input(key="seed_folder").input(str(seeds))
    app.radio(key="operator").set_value("llm")
    app.text_input(key="llm_base_url").input(server.base_url)
    app.text_input(key="llm_model").input("scripted-model")
    app.text_input(key="api_key").input(canary)
    for name, value in {
        "generations": 1,
        "children": 1,
        "time_budget": 20.0,
        "max_epochs": 1,
        "latency_repeats": 3,
    }.items():
        app.number_input(key=name).set_value(value)
    app.text_input(key="source").input(str(source))
    app.text_input(key="cache_dir").input(str(cache))
    app.text_input(key="new_run_id").input("canary")
    app.button(key="evolve").click().run()
    assert not app.error, [e.value for e in app.error]
    launched, process = app.session_state["processes"]["evolve:canary"]
    code = wait_for(process, 300)
    run_dir = runs / "canary"
    log = (run_dir / "ui" / "evolve.log").read_text()
    assert code == 0, log[-3000:]
    app.run()  # the page reads the finished run
    assert not app.exception
    assert any(c.value.startswith("Leaderboard: 2 candidates, 2 trained ok") for c in app.caption), [
        c.value for c in app.caption
    ]
    print(f"canary run: {time.perf_counter() - started:.1f} s")

    # The key was used: the scripted server saw it, and the child came from the LLM.
    assert server.requests, "the LLM operator made no request"
    auth = {h.get("Authorization") or h.get("authorization") for h in server.request_headers}
    assert auth == {f"Bearer {canary}"}
    lineage = (run_dir / "lineage.json").read_text()
    assert '"operator": "llm-mutation"' in lineage

    # ... and it is nowhere else.
    roots = [run_dir, Path(os.environ["PREFECT_HOME"]), cache, REPO / "test-artifacts", tmp_path]
    assert files_containing(roots, canary.encode()) == []
    assert canary not in launched.model_dump_json()
    out, err = capfd.readouterr()
    assert canary not in out and canary not in err
