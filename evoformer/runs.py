"""Run folders: ``<runs_dir>/<run-id>/`` (laid out as :class:`~evoformer.layout.RunLayout` says) with a
``summary.json`` that every flow updates."""

from __future__ import annotations

import json
import os
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from evoformer.fields import form_schema
from evoformer.files import write_text_atomic
from evoformer.layout import RunLayout

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _env_path(name: str, default: str) -> str:
    return os.environ.get(name) or default


class StorageConfig(BaseModel):
    """Where runs and caches live."""

    model_config = ConfigDict(json_schema_extra=form_schema())

    runs_dir: str = Field(
        default_factory=lambda: _env_path("EVOFORMER_RUNS", "runs"),
        title="Runs folder",
        description="Root of run folders.",
    )
    cache_dir: str = Field(
        default_factory=lambda: _env_path("EVOFORMER_CACHE", ".cache/evoformer"),
        title="Cache folder",
        description="Shared cache (features), reused across runs.",
    )
    run_id: str | None = Field(
        default=None, title="Run to resume", description="Reuse a run folder (resume); empty: a new id."
    )


def new_run_id() -> str:
    """A sortable, readable id: UTC timestamp plus a short random suffix."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def open_run(storage: StorageConfig) -> tuple[str, Path]:
    """Create (or reopen) the run folder and return ``(run_id, path)``."""
    run_id = storage.run_id or new_run_id()
    if not _RUN_ID.match(run_id):
        raise ValueError(f"invalid run id {run_id!r}: use letters, digits, '.', '_' and '-'")
    path = RunLayout.under(storage.runs_dir, run_id).root
    path.mkdir(parents=True, exist_ok=True)
    return run_id, path


def read_summary(run: Path | str | RunLayout) -> dict[str, Any]:
    """The run's ``summary.json``; empty when there is none yet."""
    path = RunLayout.of(run).summary
    return json.loads(path.read_text()) if path.is_file() else {}


def update_summary(run: Path | str | RunLayout, section: dict[str, Any]) -> dict[str, Any]:
    """Merge ``section`` into ``summary.json`` (atomically) and return the whole summary."""
    summary = read_summary(run)
    summary.update(section)
    write_text_atomic(RunLayout.of(run).summary, json.dumps(summary, indent=2, default=str))
    return summary
