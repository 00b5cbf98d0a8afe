"""The GUI as a new user meets it, in headless Chromium (Debian's package, driven by Playwright).

`evoformer ui` is started on a free loopback port; the test uploads a small seed program, points
the run at a small data file, sets a tiny budget and presses Evolve, watches the leaderboard fill,
picks a trained model, compresses it with tiny settings and reads the comparison table.
Screenshots (leaderboard, Pareto plot, compression table) go to pytest's tmp path and are copied
to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_ui_canary import REPO, TINY_SEED, primed_data  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.integration]
ARTIFACTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert server.poll() is None, "evoformer ui exited"
        assert time.monotonic() < deadline, f"the GUI did not answer {url} in {timeout} s"
        time.sleep(0.5)


@pytest.fixture
def gui(primed_data, tmp_path: Path):  # noqa: F811
    """`evoformer ui` on a free loopback port; yields (url, runs dir)."""
    if CHROMIUM is None:
        pytest.skip(
            "no chromium executable on PATH: install Debian's chromium (`make system-deps` as root, "
            "or `apt-get install chromium`) to run the browser test"
        )
    _, cache = primed_data
    runs, port = tmp_path / "runs", _free_port()
    env = dict(os.environ, EVOFORMER_CACHE=str(cache), EVOFORMER_UI_POLL_S="1")
    env.pop("PREFECT_API_URL", None)  # local runs
    cmd = [str(Path(sys.executable).with_name("evoformer")), "ui", "--port", str(port), "--runs-dir", str(runs)]
    server = subprocess.Popen(
        cmd, env=env, stdout=open(tmp_path / "ui.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", server)
        yield f"http://127.0.0.1:{port}", runs
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        for record in runs.glob("*/ui/*launch.json"):  # children the GUI started, if the test stopped early
            pid = json.loads(record.read_text()).get("pid")
            if pid:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass


def _fill(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")
    page.wait_for_timeout(300)


def _shot(locator_or_page, name: str, folder: Path) -> Path:
    path = folder / name
    locator_or_page.screenshot(path=str(path))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, ARTIFACTS / name)
    return path


def test_new_user_evolves_and_compresses_in_the_browser(gui, primed_data, tmp_path: Path) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    url, runs = gui
    source, _ = primed_data
    seed = tmp_path / "tiny.py"
    seed.write_text(TINY_SEED)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    (ARTIFACTS / "failure.png").unlink(missing_ok=True)
    started = time.perf_counter()
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1500, "height": 2600})
        page.set_default_timeout(30_000)
        try:
            page.goto(url)
            expect(page.get_by_text("New evolution run")).to_be_visible(timeout=60_000)
            page.locator('[data-testid="stFileUploader"] input[type="file"]').first.set_input_files(str(seed))
            expect(page.get_by_text("tiny.py")).to_be_visible()
            for label, value in {
                "Generations": "1",
                "Children / generation": "2",
                "Training s / candidate": "20",
                "Max epochs": "2",
                "Latency repeats": "3",
            }.items():
                _fill(page, label, value)
            page.get_by_text("Data and storage").click()
            _fill(page, "Data file", str(source))
            _fill(page, "Run id", "browser-run")
            page.get_by_role("button", name="Evolve").click()

            # The live view fills: seeds first, then the children; the state ends Completed.
            expect(page.get_by_text("Run browser-run")).to_be_visible()
            expect(page.get_by_text(re.compile(r"Leaderboard: 3 candidates, [1-3] trained ok"))).to_be_visible(
                timeout=240_000
            )
            expect(
                page.locator('[data-testid="stMetric"]').filter(has_text="State").get_by_text("Completed")
            ).to_be_visible(timeout=120_000)
            leaderboard = page.locator('[data-testid="stDataFrame"]').nth(1)
            expect(leaderboard).to_be_visible()
            page.wait_for_timeout(1000)
            _shot(page, "leaderboard.png", shots)
            chart = page.locator('[data-testid="stVegaLiteChart"]').first
            expect(chart).to_be_visible()
            chart.scroll_into_view_if_needed()
            _shot(chart, "pareto.png", shots)

            # Pick a model, tiny compression settings, Compress, read the table.
            picker = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Candidates to compress")
            picker.locator("input").click()
            page.get_by_role("option", name="seed-tiny").click()
            page.keyboard.press("Escape")
            page.get_by_text("Compression settings").click()
            _fill(page, "Unstructured sparsities", "")
            _fill(page, "Structured ratios", "0.5")
            quantizers = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Quantizers")
            quantizers.get_by_role("button", name="Remove torch_ao").click()
            expect(quantizers.get_by_role("button", name="Remove onnxruntime")).to_have_count(1)
            expect(quantizers.get_by_role("button", name="Remove torch_ao")).to_have_count(0)
            for label, value in {
                "Fine-tune epochs": "1",
                "Fine-tune s": "10",
                "Fine-tune pairs (0: all)": "64",
            }.items():
                _fill(page, label, value)
            _fill(page, "Latency repeats (compression)", "3")
            page.get_by_role("button", name="Compress").click()
            done = page.get_by_text(re.compile(r"Compressed seed-tiny: ok, 5 variants"))
            expect(done).to_be_visible(timeout=240_000)
            table = page.locator('[data-testid="stDataFrame"]').last
            table.scroll_into_view_if_needed()
            page.wait_for_timeout(1000)
            _shot(table, "compression-table.png", shots)
        except Exception:
            page.screenshot(path=str(shots / "failure.png"))
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(shots / "failure.png", ARTIFACTS / "failure.png")
            raise
        finally:
            browser.close()
    print(f"browser test: {time.perf_counter() - started:.1f} s after priming")

    report = json.loads((runs / "browser-run" / "compression" / "seed-tiny" / "compression.json").read_text())
    assert [v["name"] for v in report["variants"]] == [
        "fp32",
        "int8-onnxruntime",
        "onnx-fp32",
        "structured-50%",
        "structured-50%+int8-onnxruntime",
    ]
    for name in ("leaderboard.png", "pareto.png", "compression-table.png"):
        assert (shots / name).stat().st_size > 5_000 and (ARTIFACTS / name).is_file()
