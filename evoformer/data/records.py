"""Pydantic models that every loaded row is validated against."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evoformer.labels import normalize_label


class PairRecord(BaseModel):
    """One claim/evidence pair with its label: the unit the classifiers see."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    claim_id: str = Field(min_length=1)
    claim: str = Field(min_length=1)
    evidence: str = Field(min_length=1)
    label: str

    @field_validator("label", mode="before")
    @classmethod
    def _known_label(cls, value: Any) -> str:
        return normalize_label(value)


class ClimateFeverEvidence(BaseModel):
    """One evidence sentence of the original Climate-FEVER release."""

    model_config = ConfigDict(extra="ignore")

    evidence_id: str | None = None
    evidence_label: Any
    evidence: str
    article: str | None = None


class ClimateFeverClaim(BaseModel):
    """One line of ``climate-fever.jsonl``: a claim with its evidence sentences."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    claim_id: str
    claim: str
    claim_label: Any = None
    evidences: list[ClimateFeverEvidence] = Field(min_length=1)

    def pairs(self) -> list[PairRecord]:
        """Expand the claim into one validated pair per evidence sentence."""
        return [
            PairRecord(claim_id=self.claim_id, claim=self.claim, evidence=ev.evidence, label=ev.evidence_label)
            for ev in self.evidences
        ]
