"""A folder of LLM replies, one JSON file per request key, so that a resumed run costs nothing twice."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from evoformer.files import write_text_atomic

log = logging.getLogger(__name__)

_KEY = re.compile(r"^[0-9a-f]{64}$")


def atomic_write_json(path: Path, payload: Any) -> None:
    """Write JSON to ``path`` atomically (never half-written)."""
    write_text_atomic(path, json.dumps(payload, indent=1, ensure_ascii=False))


def reply_key(
    model: str,
    messages: list[dict[str, Any]],
    temperature: float,
    sample_index: int,
    seed: int | None,
    extra: dict[str, Any] | None = None,
) -> str:
    """The sha256 of the canonical JSON of everything that selects a reply."""
    payload = {
        "model": model,
        "messages": messages,
        "temperature": float(temperature),
        "sample_index": int(sample_index),
        "seed": seed,
        "extra": extra or {},
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class CachedReply(BaseModel):
    """One stored reply."""

    text: str
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    model: str
    finish_reason: str | None = None
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())


class ReplyCache:
    """Replies under ``folder/<key>.json``; unreadable files count as misses."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        """The file of ``key`` (a 64-hex-digit :func:`reply_key`)."""
        if not _KEY.match(key):
            raise ValueError(f"not a reply key: {key!r}")
        return self.folder / f"{key}.json"

    def get(self, key: str) -> CachedReply | None:
        """The stored reply, or None when absent or unreadable (logged)."""
        path = self.path(key)
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as err:
            log.warning("LLM cache: cannot read %s (%s); treating it as a miss", path, err)
            return None
        try:
            return CachedReply.model_validate_json(raw)
        except ValueError as err:
            log.warning("LLM cache: corrupt entry %s (%s); treating it as a miss", path, str(err).splitlines()[0])
            return None

    def put(self, key: str, reply: CachedReply) -> None:
        """Store ``reply`` under ``key`` atomically."""
        atomic_write_json(self.path(key), reply.model_dump(mode="json"))
