"""The validated shape of one synthetic example and the provenance columns it carries."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evoformer.labels import normalize_label

MIN_TEXT_CHARS = 10
MAX_TEXT_CHARS = 2000
PROVENANCE_COLUMNS = ["source", "generator", "prompt_hash", "origin"]
SYNTHETIC_COLUMNS = ["claim", "evidence", "label", *PROVENANCE_COLUMNS]
REAL_SOURCE = "real"


class SyntheticExample(BaseModel):
    """One claim/evidence/label example with where it came from (every example is validated)."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    claim: str = Field(min_length=MIN_TEXT_CHARS, max_length=MAX_TEXT_CHARS)
    evidence: str = Field(min_length=MIN_TEXT_CHARS, max_length=MAX_TEXT_CHARS)
    label: str
    source: str = Field(min_length=1, description="'import:<file>' or 'llm'.")
    generator: str = Field(min_length=1, description="The model that wrote it (a file's folder name for imports).")
    prompt_hash: str | None = Field(default=None, description="sha256[:16] of the prompt (generated examples).")
    origin: str = Field(min_length=1, description="'<file>:<line>' or 'request <n> item <i>'.")

    @field_validator("label", mode="before")
    @classmethod
    def _known_label(cls, value: Any) -> str:
        return normalize_label(value)

    @field_validator("claim", "evidence", mode="before")
    @classmethod
    def _plain_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {type(value).__name__}")
        return " ".join(value.split())


class Rejection(BaseModel):
    """A row (or reply) that did not become an example, and why."""

    origin: str
    reason: str
