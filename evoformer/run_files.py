"""Links from the Prefect dashboard to a run's files (the Pareto plot, ``report.html``). Pure: no
Prefect, no server; ``flows/file_server.py`` serves the files.

Browsers refuse ``file://`` links from an ``http://`` page (the V1 UI's link does nothing) and the
current UI's markdown renderer drops them (the link text shows, without a target), so a file is
linked only through an HTTP server that serves the runs folder; without one its path is shown as
text. Images are embedded as ``data:`` URIs, which both UIs' markdown renderers show.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from pydantic import BaseModel, Field

from evoformer.runs import StorageConfig

FILES_URL_ENV = "EVOFORMER_FILES_URL"
FILES_ROOT_ENV = "EVOFORMER_FILES_ROOT"
FILES_PORT_ENV = "EVOFORMER_FILES_PORT"
RUNS_ENV = "EVOFORMER_RUNS"  # the runs root, as StorageConfig reads it
DEFAULT_PORT = 4201  # next to Prefect's 4200; fixed, so that older artifacts' links keep working
MAX_EMBED_BYTES = 2_000_000  # a larger image would bloat every artifact version in the database


class FilesSettings(BaseModel):
    """Where a run's files are served from; read from the environment by :meth:`from_env`."""

    url: str | None = Field(
        default=None,
        description=f"${FILES_URL_ENV}: base URL that serves `root` (http://127.0.0.1:<port>); empty: "
        "files are not served and artifacts show their paths.",
    )
    root: str = Field(
        default_factory=lambda: StorageConfig().runs_dir,
        description=f"${FILES_ROOT_ENV}: the folder served at `url`; default: the runs root "
        "($EVOFORMER_RUNS or ./runs).",
    )
    port: int | None = Field(
        default=DEFAULT_PORT,
        description=f"${FILES_PORT_ENV}: port of the built-in server that `python -m deployments.evolve` starts "
        "(0: any free port; 'off': none).",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FilesSettings:
        """The settings of ``environ`` (default ``os.environ``); unset or empty variables take the defaults."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        if env.get(FILES_URL_ENV):
            values["url"] = env[FILES_URL_ENV].rstrip("/")
        if env.get(FILES_ROOT_ENV) or env.get(RUNS_ENV):  # else StorageConfig's default, from os.environ
            values["root"] = env.get(FILES_ROOT_ENV) or env[RUNS_ENV]
        port = env.get(FILES_PORT_ENV, "").strip().lower()
        if port in ("off", "none", "no", "false"):
            values["port"] = None
        elif port:
            values["port"] = int(port)
        return cls(**values)


def served_url(path: str | Path, settings: FilesSettings | None = None) -> str | None:
    """The http URL of ``path`` when ``settings.url`` serves a root it lies under; else None."""
    settings = FilesSettings.from_env() if settings is None else settings
    if not settings.url:
        return None
    try:
        relative = Path(path).resolve().relative_to(Path(settings.root).resolve())
    except ValueError:  # outside the served folder
        return None
    return settings.url.rstrip("/") + "/" + "/".join(quote(part) for part in relative.parts)


def file_link_markdown(path: str | Path, text: str, settings: FilesSettings | None = None) -> str:
    """``[text](http URL)`` when the file is served, else the text and the absolute path as code."""
    url = served_url(path, settings)
    if url is not None:
        return f"[{text}]({url})"
    return (
        f"{text}: `{Path(path).resolve()}` (not served over HTTP: `python -m deployments.evolve` serves the "
        f"runs folder, or set ${FILES_URL_ENV})"
    )


def embedded_image_markdown(path: str | Path, alt: str, max_bytes: int = MAX_EMBED_BYTES) -> str:
    """``![alt](data:image/png;base64,...)`` of a PNG; empty when it is missing or over ``max_bytes``."""
    image = Path(path)
    if not image.is_file() or image.stat().st_size > max_bytes:
        return ""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(image.read_bytes()).decode('ascii')})"


def plot_markdown(path: str | Path, text: str, settings: FilesSettings | None = None) -> str:
    """A plot artifact's markdown: the link (or path) line, then the image itself."""
    image = embedded_image_markdown(path, text)
    return file_link_markdown(path, text, settings) + (f"\n\n{image}\n" if image else "\n")
