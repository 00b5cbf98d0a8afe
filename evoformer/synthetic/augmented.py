"""The augmented training set: real train rows plus the kept synthetic rows, versioned, in Parquet.

``<root>/augmented-<version>/train.parquet`` holds columns ``pair_id, claim_id, claim, evidence,
label, source, generator, prompt_hash, origin`` (real rows have source ``real``), and
``manifest.json`` the split fingerprints it was gated against. :func:`apply_augmented` puts it
into a run's splits: only train changes, and only if val and test are exactly the splits the
gates checked it against.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field, ValidationError

from evoformer.data.sources import PAIR_COLUMNS, claim_text_id
from evoformer.data.splits import DataSplits, SplitLeakError, claim_overlap, fingerprint
from evoformer.files import write_text_atomic
from evoformer.synthetic.records import PROVENANCE_COLUMNS, REAL_SOURCE, SyntheticExample

TRAIN_FILE = "train.parquet"
MANIFEST_FILE = "manifest.json"
AUGMENTED_COLUMNS = [*PAIR_COLUMNS, *PROVENANCE_COLUMNS]


class AugmentedSetError(ValueError):
    """The augmented set cannot be used with these splits (other fingerprints, edited file, leak)."""


class AugmentedManifest(BaseModel):
    """What an augmented set is and what it was checked against."""

    version: str = Field(description="sha256[:12] of the table's content.")
    created: str
    split_fingerprints: dict[str, str] = Field(
        description="Fingerprints of the real train/val/test it was gated against."
    )
    real_train_pairs: int
    synthetic_pairs: int
    synthetic_labels: dict[str, int]
    synthetic_sources: dict[str, int]
    settings: dict[str, Any] = Field(default_factory=dict, description="Gate thresholds and data settings.")


def _content_hash(frame: pd.DataFrame) -> str:
    payload = frame[AUGMENTED_COLUMNS].astype(object).where(frame[AUGMENTED_COLUMNS].notna(), None).values.tolist()
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False, default=str).encode()).hexdigest()[:12]


def build_augmented_train(splits: DataSplits, kept: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Real train rows (source ``real``) followed by the synthetic rows, with fresh pair ids."""
    real = splits["train"][PAIR_COLUMNS].copy()
    real["source"], real["generator"], real["prompt_hash"] = REAL_SOURCE, None, None
    real["origin"] = [f"{origin}#pair {p}" for p in real["pair_id"]]
    synthetic = kept.copy()
    first_id = 1 + max(int(frame["pair_id"].max()) for frame in splits.frames.values())
    synthetic.insert(0, "pair_id", range(first_id, first_id + len(synthetic)))
    synthetic.insert(1, "claim_id", [claim_text_id(c) for c in synthetic["claim"]])
    return pd.concat([real, synthetic[AUGMENTED_COLUMNS]], ignore_index=True)[AUGMENTED_COLUMNS]


def write_augmented(
    root: str | Path, frame: pd.DataFrame, split_fingerprints: dict[str, str], settings: dict[str, Any]
) -> tuple[Path, AugmentedManifest]:
    """Write ``augmented-<version>/`` under ``root`` (table first, manifest last) and return it."""
    version = _content_hash(frame)
    synthetic = frame[frame["source"] != REAL_SOURCE]
    manifest = AugmentedManifest(
        version=version,
        created=datetime.now(UTC).isoformat(),
        split_fingerprints=dict(split_fingerprints),
        real_train_pairs=int((frame["source"] == REAL_SOURCE).sum()),
        synthetic_pairs=len(synthetic),
        synthetic_labels=dict(Counter(synthetic["label"])),
        synthetic_sources=dict(Counter(synthetic["source"])),
        settings=settings,
    )
    folder = Path(root) / f"augmented-{version}"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{TRAIN_FILE}.tmp"
    frame.to_parquet(tmp, index=False)
    tmp.replace(folder / TRAIN_FILE)
    write_text_atomic(folder / MANIFEST_FILE, manifest.model_dump_json(indent=2))
    return folder, manifest


def resolve_augmented(path: str | Path) -> Path:
    """The folder of an augmented set, given the folder, its manifest or its table."""
    path = Path(path).expanduser()
    folder = path if path.is_dir() else path.parent
    if not (folder / MANIFEST_FILE).is_file() or not (folder / TRAIN_FILE).is_file():
        raise AugmentedSetError(
            f"{path}: not an augmented set (expected {MANIFEST_FILE} and {TRAIN_FILE}; make one with `evoformer synth`)"
        )
    return folder


def load_augmented(path: str | Path) -> tuple[pd.DataFrame, AugmentedManifest]:
    """The table and manifest, with the table checked against the manifest's version."""
    folder = resolve_augmented(path)
    try:
        manifest = AugmentedManifest.model_validate_json((folder / MANIFEST_FILE).read_text())
    except ValidationError as exc:
        raise AugmentedSetError(f"{folder / MANIFEST_FILE}: invalid manifest ({exc.errors()[0]['msg']})") from exc
    frame = pd.read_parquet(folder / TRAIN_FILE)
    missing = [c for c in AUGMENTED_COLUMNS if c not in frame.columns]
    if missing:
        raise AugmentedSetError(f"{folder / TRAIN_FILE}: missing column(s) {missing}")
    if _content_hash(frame) != manifest.version:
        raise AugmentedSetError(
            f"{folder / TRAIN_FILE}: content does not match version {manifest.version} (edited after it was gated?)"
        )
    return frame, manifest


def apply_augmented(splits: DataSplits, path: str | Path) -> tuple[DataSplits, AugmentedManifest]:
    """Splits whose train is the augmented set; val and test untouched and verified."""
    frame, manifest = load_augmented(path)
    for name in ("train", "val", "test"):
        if manifest.split_fingerprints.get(name) != splits.fingerprints[name]:
            raise AugmentedSetError(
                f"augmented set {manifest.version} was gated against other {name} data (fingerprint "
                f"{str(manifest.split_fingerprints.get(name))[:12]} vs {splits.fingerprints[name][:12]}); "
                "run `evoformer synth` with the same data and split settings"
            )
    real = frame[frame["source"] == REAL_SOURCE][PAIR_COLUMNS].reset_index(drop=True)
    if fingerprint(real) != splits.fingerprints["train"]:
        raise AugmentedSetError(f"augmented set {manifest.version}: its real rows are not this run's train split")
    synthetic = frame[frame["source"] != REAL_SOURCE]
    for row in synthetic.astype(object).where(synthetic.notna(), None).to_dict(orient="records"):
        try:
            SyntheticExample(**{k: row[k] for k in ("claim", "evidence", "label", *PROVENANCE_COLUMNS)})
        except ValidationError as exc:
            raise AugmentedSetError(
                f"augmented set {manifest.version}: invalid synthetic row {row['pair_id']}: {exc.errors()[0]['msg']}"
            ) from exc
    frames = {"train": frame, "val": splits["val"], "test": splits["test"]}
    overlap = claim_overlap(frames)
    if overlap:
        raise SplitLeakError(f"augmented set {manifest.version}: {overlap} claim(s) also in val or test")
    fingerprints = {name: fingerprint(f) for name, f in frames.items()}
    return DataSplits(frames=frames, fingerprints=fingerprints, claim_overlap=0), manifest
