"""Encode (claim, evidence) pairs with the frozen encoder and cache token states on disk.

The cache key is (split fingerprints, encoder content hash, max_length). A folder is built
under a temporary name and renamed into place when complete, so a killed run never leaves a
half-written cache that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evoformer.features.encoder import EncoderConfig, encoder_identity, load_encoder
from evoformer.features.store import MANIFEST, FeatureManifest, SplitManifest, load_manifest, write_manifest
from evoformer.files import build_folder_atomic
from evoformer.progress import ProgressLog


@dataclass
class FeaturizeResult:
    """Where the features are, and whether they were reused from the cache."""

    path: Path
    reused: bool
    manifest: FeatureManifest


def feature_key(fingerprints: dict[str, str], encoder_id: str, max_length: int, layers: int) -> str:
    """The cache key of a feature folder."""
    payload = json.dumps(
        {"splits": fingerprints, "encoder": encoder_id, "max_length": max_length, "layers": layers}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def feature_folder(cache_dir: Path, config: EncoderConfig, key: str) -> Path:
    slug = Path(config.encoder).name.replace(" ", "_")[:40]
    return Path(cache_dir) / "features" / f"{slug}-L{config.max_length}-{key}"


def planned_feature_folder(cache_dir: Path, fingerprints: dict[str, str], config: EncoderConfig) -> Path:
    """The folder that :func:`featurize_splits` would use, without computing anything."""
    return feature_folder(
        cache_dir, config, feature_key(fingerprints, encoder_identity(config.encoder), config.max_length, config.layers)
    )


def featurize_splits(
    splits: dict[str, pd.DataFrame],
    fingerprints: dict[str, str],
    config: EncoderConfig,
    cache_dir: str | Path,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> FeaturizeResult:
    """Return the feature folder for ``splits``, computing it only when no complete one exists.

    ``progress`` shows a tqdm bar; ``log``, if given, receives a line per split every ~10% of its
    pairs or 30 s, whichever is rarer, and at its end (:class:`~evoformer.progress.ProgressLog`, for
    loggers that do not see the bar, e.g. Prefect's). Neither changes the features.
    """
    encoder_id = encoder_identity(config.encoder)
    key = feature_key(fingerprints, encoder_id, config.max_length, config.layers)
    folder = feature_folder(Path(cache_dir), config, key)
    if (folder / MANIFEST).is_file():
        return FeaturizeResult(path=folder, reused=True, manifest=load_manifest(folder))

    started = time.perf_counter()
    tokenizer, model = load_encoder(config.encoder)
    manifests: list[FeatureManifest] = []

    def build(tmp: Path) -> None:
        split_manifests = {}
        for name, frame in splits.items():
            split_manifests[name] = _encode_split(
                frame, tokenizer, model, config, tmp / name, desc=f"featurize {name}", progress=progress, log=log
            )
            split_manifests[name].fingerprint = fingerprints[name]
        manifests.append(
            FeatureManifest(
                key=key,
                encoder=config.encoder,
                encoder_id=encoder_id,
                max_length=config.max_length,
                layers=config.layers,
                dim=int(model.config.hidden_size),
                splits=split_manifests,
                seconds=round(time.perf_counter() - started, 3),
            )
        )
        write_manifest(tmp, manifests[0])

    if not build_folder_atomic(folder, build, MANIFEST):
        return FeaturizeResult(path=folder, reused=True, manifest=load_manifest(folder))
    manifest = manifests[0]
    return FeaturizeResult(path=folder, reused=False, manifest=manifest)


def _encode_split(
    frame,
    tokenizer,
    model,
    config: EncoderConfig,
    out: Path,
    desc: str,
    progress: bool,
    log: Callable[[str], None] | None = None,
) -> SplitManifest:
    """Encode one split in length-sorted batches with dynamic padding; write states in row order."""
    import torch
    from tqdm.auto import tqdm

    out.mkdir(parents=True)
    claims, evidences = frame["claim"].tolist(), frame["evidence"].tolist()
    encoded = tokenizer(claims, evidences, truncation=True, max_length=config.max_length)
    input_ids = encoded["input_ids"]
    token_type_ids = encoded.get("token_type_ids")
    lengths = np.array([len(ids) for ids in input_ids], dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    dim = int(model.config.hidden_size)
    states = np.lib.format.open_memmap(out / "states.npy", mode="w+", dtype=np.float16, shape=(int(offsets[-1]), dim))

    order = np.argsort(lengths, kind="stable")
    batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    pad_id = tokenizer.pad_token_id or 0
    report = ProgressLog(log, desc, len(frame))
    with torch.inference_mode():
        for batch in tqdm(batches, desc=desc, unit="batch", disable=not progress, leave=False):
            width = int(lengths[batch].max())
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            types = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                n = lengths[i]
                ids[row, :n] = torch.tensor(input_ids[i])
                attention[row, :n] = 1
                if token_type_ids is not None:
                    types[row, :n] = torch.tensor(token_type_ids[i])
            inputs = {"input_ids": ids, "attention_mask": attention}
            if token_type_ids is not None:
                inputs["token_type_ids"] = types
            hidden = token_states(model, inputs, config.layers).to(torch.float16).numpy()
            for row, i in enumerate(batch):
                states[offsets[i] : offsets[i + 1]] = hidden[row, : lengths[i]]
            report.advance(len(batch))
    states.flush()
    del states
    np.save(out / "lengths.npy", lengths)
    np.save(out / "claim_lengths.npy", _claim_segment_lengths(input_ids, token_type_ids, tokenizer.sep_token_id))
    return SplitManifest(fingerprint="", pairs=len(frame), tokens=int(offsets[-1]))


def token_states(model, inputs: dict, layers: int):
    """The mean of the encoder's last ``layers`` hidden layers, [B, T, D] (1: ``last_hidden_state``)."""
    import torch

    hidden = model(**inputs, output_hidden_states=True).hidden_states[1:]  # [0] is the embedding layer
    if layers > len(hidden):
        raise ValueError(f"layers={layers}, but the encoder has {len(hidden)} layers")
    return torch.stack(hidden[-layers:]).mean(0)


def _claim_segment_lengths(input_ids, token_type_ids, sep_token_id: int | None) -> np.ndarray:
    """Tokens of the first segment per pair: by token types, else up to the first separator."""
    if token_type_ids is not None:
        return np.array([sum(1 for t in types if t == 0) for types in token_type_ids], dtype=np.int32)
    if sep_token_id is not None:
        return np.array(
            [ids.index(sep_token_id) + 1 if sep_token_id in ids else len(ids) for ids in input_ids], dtype=np.int32
        )
    return np.array([len(ids) for ids in input_ids], dtype=np.int32)
