"""The Pareto plot and the run report open from the Prefect dashboard with one click, in the
current UI (``/v2/...``) and the V1 UI (``/...``), in headless Chromium (Debian's, via Playwright).

A real ``prefect server start`` (UI on, temporary ``PREFECT_HOME``) and the runs folder served by
``flows/file_server.py`` the way ``python -m deployments.evolve`` serves it; the artifacts are
published by the real tasks (``publish_generation``, ``write_report_task``). Screenshots go to
``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from test_evolution_units import DISPLAY, _evolve_summary
from test_schedules import SERVER_START_TIMEOUT_S, _free_port, _start, _stop, _tail, _wait_for

from evoformer.run_files import FILES_ROOT_ENV, FILES_URL_ENV, FilesSettings, file_link_markdown

pytestmark = [pytest.mark.browser, pytest.mark.integration]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
UIS = {"current": "/v2", "v1": ""}  # 3.8.8 serves the V1 bundle at / and the current one at /v2


@pytest.fixture
def dashboard(tmp_path: Path):
    """``prefect server start`` with its UI on a free loopback port; yields the base URL."""
    if CHROMIUM is None:
        pytest.skip("no chromium executable on PATH: `apt-get install chromium` to run the browser tests")
    home, port = tmp_path / "prefect-home", _free_port()
    home.mkdir()
    log, base = home / "server.log", f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    # PREFECT_API_URL tells the UI where the API is (else it calls 127.0.0.1:4200).
    env.update(
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_HOME=str(home),
        PREFECT_API_URL=f"{base}/api",
    )
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    proc = _start(cmd, log, env, home)
    try:
        import httpx

        def healthy() -> bool:
            assert proc.poll() is None, f"prefect server exited with {proc.returncode}\n{_tail(log)}"
            try:
                return httpx.get(f"{base}/api/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_for(healthy, SERVER_START_TIMEOUT_S, "the server's /api/health", [log])
        yield base
    finally:
        _stop(proc)


def _publish(base: str, runs: Path, monkeypatch) -> dict[str, str]:
    """Serve ``runs`` and publish the artifacts with the real tasks; the ids of the latest ones."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.file_server import serve_run_files
    from tasks.evolution import publish_generation
    from tasks.report import write_report_task

    run = runs / "r1"
    run.mkdir(parents=True)
    (run / "lineage.json").write_text(json.dumps([p.model_dump(mode="json") for p in DISPLAY]))
    majority = {"macro_f1": 0.2613, "weighted_f1": 0.5, "accuracy": 0.64, "per_class_f1": {}}
    summary = {"run_id": "r1", "baselines": {"majority": {"val": majority, "test": majority}}}
    (run / "summary.json").write_text(json.dumps(summary | {"evolve": _evolve_summary(True, True)}))
    for name in (FILES_URL_ENV, FILES_ROOT_ENV):
        monkeypatch.delenv(name, raising=False)  # serve_run_files sets them; undone after the test
    server = serve_run_files(FilesSettings(root=str(runs), port=0))
    assert server is not None
    with temporary_settings({PREFECT_API_URL: f"{base}/api"}):
        publish_generation(DISPLAY, 1, str(run), 0.2613)
        write_report_task(str(run))
        # What an unserved run shows: the path as text.
        unserved = FilesSettings(root=str(runs), url=None)
        create_markdown_artifact(
            key="run-report-unserved", markdown=file_link_markdown(run / "report.html", "Run report (HTML)", unserved)
        )

        async def latest() -> dict[str, str]:
            async with get_client() as client:
                return {a.key: str(a.id) for a in await client.read_artifacts() if a.key}

        ids = asyncio.run(latest())
    return ids | {"_server": server}


def _shot(page, name: str, folder: Path) -> None:
    page.screenshot(path=str(folder / name), full_page=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(folder / name, ARTIFACTS / name)


def _open_with_one_click(context, page, link_text: str):
    """Click the link; the page it opened (a new tab in V1, this tab in the current UI) and its response."""
    from playwright.sync_api import expect

    link = page.get_by_role("link", name=link_text)
    expect(link).to_be_visible(timeout=30_000)
    href = link.get_attribute("href")
    assert href and href.startswith("http://127.0.0.1:"), href
    if link.get_attribute("target") == "_blank":
        with context.expect_page() as opened, context.expect_event("response", lambda r: r.url == href) as response:
            link.click()
        target = opened.value
    else:
        with page.expect_response(lambda r: r.url == href) as response:
            link.click()
        target = page
    target.wait_for_load_state()
    assert target.url == href
    print(f"{link_text}: {href} opened in {'a new tab' if target is not page else 'the same tab'}")
    return target, response.value


def test_plot_and_report_open_with_one_click_in_both_uis(dashboard: str, tmp_path: Path, monkeypatch) -> None:
    from playwright.sync_api import expect, sync_playwright

    published = _publish(dashboard, tmp_path / "runs", monkeypatch)
    server = published.pop("_server")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
            )
            for ui, prefix in UIS.items():
                context = browser.new_context(viewport={"width": 1300, "height": 1000})
                page = context.new_page()
                page.set_default_timeout(30_000)

                # The plot is in the artifact itself, and its link opens the PNG.
                page.goto(f"{dashboard}{prefix}/artifacts/artifact/{published['evolve-pareto']}")
                image = page.locator('img[src^="data:image/png;base64,"]').first
                expect(image).to_be_visible(timeout=60_000)
                page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
                _shot(page, f"dashboard-{ui}-pareto.png", shots)
                opened, response = _open_with_one_click(context, page, "Pareto front (PNG)")
                assert response.status == 200 and response.headers["content-type"] == "image/png"
                assert opened.evaluate("document.images[0].naturalWidth") > 0

                # The report opens from its artifact.
                page.goto(f"{dashboard}{prefix}/artifacts/artifact/{published['run-report']}")
                opened, response = _open_with_one_click(context, page, "Run report (HTML)")
                assert response.status == 200 and response.headers["content-type"].startswith("text/html")
                expect(opened.get_by_role("heading", name="Pareto plot")).to_be_visible()
                _shot(opened, f"dashboard-{ui}-report.png", shots)

                # Nothing serves the files: the path is shown, as text.
                page.goto(f"{dashboard}{prefix}/artifacts/artifact/{published['run-report-unserved']}")
                path = str((tmp_path / "runs" / "r1" / "report.html").resolve())
                expect(page.locator("code").filter(has_text=path).first).to_be_visible()
                expect(page.get_by_role("link", name="Run report (HTML)")).to_have_count(0)
                _shot(page, f"dashboard-{ui}-unserved.png", shots)
                context.close()
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
