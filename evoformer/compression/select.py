"""Which trained candidates of a run to compress: named ones, or the top K by val macro-F1."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from evoformer.candidates.job import METRICS_FILE, PROGRAM_FILE, WEIGHTS_FILE, Status
from evoformer.compression.evaluate import CompressionError
from evoformer.layout import RunLayout


class TrainedCandidate(BaseModel):
    id: str
    folder: str
    params: int
    val_macro_f1: float


def trained_candidates(run_dir: Path | RunLayout) -> list[TrainedCandidate]:
    """Every candidate of the run that trained ok and kept its program and weights, best val first."""
    found = []
    for folder in RunLayout.of(run_dir).candidate_folders():
        metrics_path = folder / METRICS_FILE
        if not metrics_path.is_file():
            continue
        try:
            metrics = json.loads(metrics_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if metrics.get("status") != Status.OK or not all((folder / f).is_file() for f in (PROGRAM_FILE, WEIGHTS_FILE)):
            continue
        found.append(
            TrainedCandidate(
                id=folder.name,
                folder=str(folder.resolve()),
                params=metrics["metrics"]["params"],
                val_macro_f1=metrics["metrics"]["val"]["macro_f1"],
            )
        )
    return sorted(found, key=lambda c: (-c.val_macro_f1, c.params, c.id))


def select_candidates(run_dir: Path | RunLayout, ids: list[str], top_k: int) -> list[TrainedCandidate]:
    """The named candidates (each must have trained ok), or else the ``top_k`` best by val macro-F1."""
    trained = trained_candidates(run_dir)
    if not ids:
        if not trained:
            raise CompressionError(f"run {RunLayout.of(run_dir).run_id} has no trained candidate to compress")
        return trained[:top_k]
    by_id = {c.id: c for c in trained}
    missing = [i for i in ids if i not in by_id]
    if missing:
        known = ", ".join(c.id for c in trained[:20]) or "none"
        raise CompressionError(
            f"not a trained candidate of run {RunLayout.of(run_dir).run_id}: {', '.join(missing)} (trained: {known})"
        )
    return [by_id[i] for i in ids]
