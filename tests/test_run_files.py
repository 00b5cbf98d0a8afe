"""Dashboard links to a run's files: the URL mapping (evoformer/run_files.py) and the read-only
loopback file server (flows/file_server.py)."""

from __future__ import annotations

import http.client
import os
from pathlib import Path

import pytest

from evoformer.run_files import (
    FILES_PORT_ENV,
    FILES_ROOT_ENV,
    FILES_URL_ENV,
    FilesSettings,
    embedded_image_markdown,
    file_link_markdown,
    plot_markdown,
    served_url,
)
from flows.file_server import serve_run_files, server_url, start_file_server

PNG = bytes.fromhex("89504e470d0a1a0a") + b"not really a png"


def test_settings_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EVOFORMER_RUNS", str(tmp_path / "r"))
    assert FilesSettings.from_env({}) == FilesSettings(url=None, root=str(tmp_path / "r"), port=4201)
    env = {FILES_URL_ENV: "http://127.0.0.1:9/", FILES_ROOT_ENV: "/x", FILES_PORT_ENV: "off"}
    assert FilesSettings.from_env(env) == FilesSettings(url="http://127.0.0.1:9", root="/x", port=None)
    assert FilesSettings.from_env({FILES_PORT_ENV: "0", FILES_URL_ENV: ""}).port == 0


def test_served_url_maps_paths_under_the_root_only(tmp_path: Path) -> None:
    settings = FilesSettings(url="http://127.0.0.1:4201", root=str(tmp_path))
    report = tmp_path / "run 1" / "report.html"
    assert served_url(report, settings) == "http://127.0.0.1:4201/run%201/report.html"
    assert served_url(tmp_path / "r" / ".." / "r2" / "pareto.png", settings) == "http://127.0.0.1:4201/r2/pareto.png"
    assert served_url(tmp_path.parent / "other" / "report.html", settings) is None
    assert served_url(report, FilesSettings(url=None, root=str(tmp_path))) is None


def test_link_markdown_is_a_link_when_served_and_the_path_otherwise(tmp_path: Path) -> None:
    report = tmp_path / "r1" / "report.html"
    served = FilesSettings(url="http://127.0.0.1:4201", root=str(tmp_path))
    assert file_link_markdown(report, "Run report", served) == "[Run report](http://127.0.0.1:4201/r1/report.html)"
    text = file_link_markdown(report, "Run report", FilesSettings(root=str(tmp_path)))
    assert text.startswith(f"Run report: `{report.resolve()}`") and "](" not in text and "file://" not in text


def test_plot_markdown_embeds_the_png(tmp_path: Path) -> None:
    plot = tmp_path / "r1" / "pareto.png"
    plot.parent.mkdir()
    plot.write_bytes(PNG)
    markdown = plot_markdown(plot, "Pareto front", FilesSettings(url="http://h:1", root=str(tmp_path)))
    assert markdown.startswith("[Pareto front](http://h:1/r1/pareto.png)\n\n![Pareto front](data:image/png;base64,")
    assert embedded_image_markdown(plot, "p", max_bytes=4) == ""
    assert embedded_image_markdown(tmp_path / "missing.png", "p") == ""
    assert plot_markdown(tmp_path / "missing.png", "P", FilesSettings(root=str(tmp_path))).count("\n") == 1


def _get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": f"{host}:{port}"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture
def served(tmp_path: Path):
    """The server on a free port over ``tmp_path/runs`` (one run folder), a secret file beside it."""
    root = tmp_path / "runs"
    (root / "r1").mkdir(parents=True)
    (root / "r1" / "report.html").write_text("<h1>report r1</h1>")
    (tmp_path / "secret.txt").write_text("secret")
    (root / "r1" / "escape").symlink_to(tmp_path)
    server = start_file_server(root, 0)
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_file_server_serves_files_under_the_root(served: int) -> None:
    assert _get(served, "/r1/report.html") == (200, b"<h1>report r1</h1>")
    assert _get(served, "/r1/report.html?v=2")[0] == 200
    assert _get(served, "/r1/report.html", host="localhost")[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/r1/missing.html",
        "/r1/",
        "/",
        "/r1",
        "/../secret.txt",
        "/r1/../../secret.txt",
        "/r1/%2e%2e/%2e%2e/secret.txt",
        "/r1/..%2f..%2fsecret.txt",
        "/r1/escape/secret.txt",  # a symbolic link out of the root
        "//etc/passwd",
    ],
)
def test_file_server_refuses_anything_else(served: int, path: str) -> None:
    status, body = _get(served, path)
    assert status == 404 and b"secret" not in body and b"report r1" not in body


def test_file_server_answers_loopback_host_names_only(served: int) -> None:
    assert _get(served, "/r1/report.html", host="evil.example")[0] == 403


def test_file_server_is_read_only(served: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", served, timeout=10)
    connection.request("PUT", "/r1/new.txt", body=b"x")
    assert connection.getresponse().status == 501
    connection.close()


def test_serve_run_files_exports_its_url_for_flow_runs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(FILES_URL_ENV, raising=False)
    monkeypatch.delenv(FILES_ROOT_ENV, raising=False)
    assert serve_run_files(FilesSettings(root=str(tmp_path), port=None)) is None
    assert serve_run_files(FilesSettings(url="http://elsewhere", root=str(tmp_path), port=0)) is None
    server = serve_run_files(FilesSettings(root=str(tmp_path / "runs"), port=0))
    assert server is not None
    try:
        assert os.environ[FILES_URL_ENV] == server_url(server)
        assert os.environ[FILES_ROOT_ENV] == str((tmp_path / "runs").resolve())
        (tmp_path / "runs" / "r1").mkdir()
        (tmp_path / "runs" / "r1" / "pareto.png").write_bytes(PNG)
        url = served_url(tmp_path / "runs" / "r1" / "pareto.png")
        assert url == f"{server_url(server)}/r1/pareto.png"
        assert _get(server.server_address[1], "/r1/pareto.png") == (200, PNG)
    finally:
        server.shutdown()
        server.server_close()
        monkeypatch.delenv(FILES_URL_ENV, raising=False)  # set by serve_run_files, outside monkeypatch
        monkeypatch.delenv(FILES_ROOT_ENV, raising=False)


def test_busy_port_falls_back_to_a_free_one(tmp_path: Path) -> None:
    first = start_file_server(tmp_path, 0)
    try:
        second = start_file_server(tmp_path, first.server_address[1])
        assert second.server_address[1] != first.server_address[1]
        second.shutdown()
        second.server_close()
    finally:
        first.shutdown()
        first.server_close()


def test_evoformer_ui_serves_the_runs_folder_beside_the_gui(tmp_path: Path) -> None:
    from flows.cli.ui import serve_run_files_beside

    runs = tmp_path / "runs dir"
    (runs / "r1").mkdir(parents=True)
    (runs / "r1" / "report.html").write_text("<h1>report r1</h1>")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVOFORMER_FILES")}
    assert serve_run_files_beside(env | {FILES_PORT_ENV: "off"}) is None
    assert serve_run_files_beside(env | {FILES_URL_ENV: "http://elsewhere"}) is None
    env |= {"EVOFORMER_RUNS": str(runs), FILES_PORT_ENV: "0"}
    child = serve_run_files_beside(env)
    assert child is not None
    try:
        assert env[FILES_ROOT_ENV] == str(runs.resolve())
        url = served_url(runs / "r1" / "report.html", FilesSettings.from_env(env))
        assert url is not None and url.startswith(env[FILES_URL_ENV])
        assert _get(int(env[FILES_URL_ENV].rsplit(":", 1)[1]), "/r1/report.html") == (200, b"<h1>report r1</h1>")
    finally:
        child.terminate()
        child.wait(timeout=20)
