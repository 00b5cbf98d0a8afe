"""A read-only loopback HTTP server for the runs folder, so that the dashboard's artifacts can link
to a run's Pareto plot and ``report.html`` (see :mod:`evoformer.run_files` for why ``file://``
links do not open).

``python -m deployments.evolve`` starts one in a daemon thread (:func:`serve_run_files`) and
exports its URL to the flow runs it starts. ``python -m flows.file_server`` runs one on its own,
for a worker: export the printed ``EVOFORMER_FILES_URL`` in the worker's environment.

It serves regular files under the root only: no listings, no ``..``, no symbolic link out of the
root, GET and HEAD only, and only to a loopback Host header (a page on another site that points
a DNS name at 127.0.0.1 gets 403 rather than the files).
"""

from __future__ import annotations

import argparse
import errno
import os
import shlex
import sys
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from evoformer.run_files import FILES_ROOT_ENV, FILES_URL_ENV, FilesSettings

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class RunFilesHandler(SimpleHTTPRequestHandler):
    """Files under ``directory`` and nothing else; every refusal is a plain 404 (or 403 for the host)."""

    def send_head(self):  # noqa: ANN201  (the base class's contract: a file object or None)
        host = urlsplit("//" + (self.headers.get("Host") or "")).hostname or ""
        if host not in LOOPBACK_HOSTS:
            self.send_error(HTTPStatus.FORBIDDEN, "loopback host names only")
            return None
        root = Path(self.directory).resolve()
        raw = unquote(urlsplit(self.path).path)
        # The base class drops '..' segments silently; refuse them outright instead.
        if any(part == ".." for part in raw.split("/")):
            self.send_error(HTTPStatus.NOT_FOUND)
            return None
        target = Path(self.translate_path(self.path)).resolve()  # symbolic links followed
        if not target.is_relative_to(root) or not target.is_file():
            self.send_error(HTTPStatus.NOT_FOUND)  # outside the root, a folder, or missing
            return None
        return super().send_head()

    def list_directory(self, path):  # noqa: ANN001, ANN201  (never reached: folders are refused above)
        self.send_error(HTTPStatus.NOT_FOUND)
        return None

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  (the base class's name)
        pass  # one line per request on stderr would drown the serving process's log


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a tab closed mid-answer is no error
            super().handle_error(request, client_address)


def start_file_server(root: str | Path, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve ``root`` on ``host:port`` (0: a free port) from a daemon thread; port busy: a free one.

    The caller stops it with ``server.shutdown()``; the bound port is ``server.server_address[1]``."""
    handler = partial(RunFilesHandler, directory=str(Path(root).resolve()))
    try:
        server = _Server((host, port), handler)
    except OSError as error:
        if error.errno != errno.EADDRINUSE or port == 0:
            raise
        server = _Server((host, 0), handler)
        print(f"port {port} is in use; serving run files on {server.server_address[1]}", file=sys.stderr)
    threading.Thread(target=server.serve_forever, name="run-files", daemon=True).start()
    return server


def server_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


def serve_run_files(settings: FilesSettings | None = None) -> ThreadingHTTPServer | None:
    """Start the built-in server for this process and the flow runs it starts (they inherit the
    environment): sets ``$EVOFORMER_FILES_URL`` and ``$EVOFORMER_FILES_ROOT``. Nothing is started
    when ``$EVOFORMER_FILES_URL`` is already set (something else serves the files) or the port is off."""
    settings = FilesSettings.from_env() if settings is None else settings
    if settings.url or settings.port is None:
        return None
    root = Path(settings.root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    server = start_file_server(root, settings.port)
    os.environ[FILES_URL_ENV], os.environ[FILES_ROOT_ENV] = server_url(server), str(root)
    print(f"run files (Pareto plots, reports) on {server_url(server)}/ from {root}", file=sys.stderr, flush=True)
    return server


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.file_server [--root DIR] [--port N]``: serve until interrupted."""
    defaults = FilesSettings.from_env()
    parser = argparse.ArgumentParser(prog="python -m flows.file_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=defaults.root, help="folder to serve (default: the runs root)")
    parser.add_argument("--port", type=int, default=defaults.port or 0, help="port (default: 4201)")
    args = parser.parse_args(argv)
    server = start_file_server(args.root, args.port)
    # One shell line (`evoformer ui` reads it back with shlex): what a worker's environment needs.
    url, root = shlex.quote(server_url(server)), shlex.quote(str(Path(args.root).resolve()))
    print(f"export {FILES_URL_ENV}={url} {FILES_ROOT_ENV}={root}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
