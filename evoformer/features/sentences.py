"""Sentence embeddings from the frozen encoder (mean pooling, unit length), as sentence-transformers
uses all-MiniLM-L6-v2: each text is encoded on its own.

- :func:`embed_texts`: embeddings of any texts (cosine similarity for the synthetic-data gates),
  cached under a key of (encoder content hash, max_length, the texts).
- :func:`embed_sentences`: one folder per (split fingerprints, encoder, max_length, version) with
  ``<split>/claim.npy`` and ``<split>/evidence.npy`` (float32, [pairs, dim], split row order) and a
  manifest written last, built under a temporary name and renamed into place like the token
  features (the logistic-regression baseline's sentence features).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel

from evoformer.features.encoder import EncoderConfig, encoder_identity, load_encoder
from evoformer.features.store import MANIFEST
from evoformer.files import build_folder_atomic
from evoformer.progress import Progress, ProgressLog, say


def embedding_key(texts: list[str], config: EncoderConfig) -> str:
    """The cache key of the embeddings of ``texts`` (in order)."""
    digest = hashlib.sha256(json.dumps([encoder_identity(config.encoder), config.max_length]).encode())
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def _encode(texts: list[str], config: EncoderConfig, progress: Progress | None = None) -> np.ndarray:
    """Embed ``texts`` in length-sorted batches; ``progress`` gets a start line, throttled lines
    (:class:`~evoformer.progress.ProgressLog`) and an end line with the time."""
    import torch

    started = time.perf_counter()
    say(progress, f"sentence embeddings: encoding {len(texts)} texts ({config.encoder}, length ≤ {config.max_length})")
    tokenizer, model = load_encoder(config.encoder)
    encoded = tokenizer(texts, truncation=True, max_length=config.max_length)
    ids = encoded["input_ids"]
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = np.zeros((len(texts), int(model.config.hidden_size)), dtype=np.float32)
    pad = tokenizer.pad_token_id or 0
    report = ProgressLog(progress, "sentence embeddings", len(texts), unit="texts")
    with torch.inference_mode():
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            width = max(len(ids[i]) for i in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
                mask[row, : len(ids[i])] = 1
            hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).float()
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
            out[batch] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
            report.advance(len(batch))
    say(progress, f"sentence embeddings: {len(texts)} texts encoded in {time.perf_counter() - started:.0f} s")
    return out


def embed_texts(
    texts: list[str],
    config: EncoderConfig | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Unit-length float32 embeddings ``[len(texts), dim]``; the dot product is the cosine similarity.
    ``progress``, if given, hears of a cache hit, or of the encoding's start, progress and end."""
    config = config or EncoderConfig()
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    unique = sorted(set(texts))
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / "embeddings" / f"{embedding_key(unique, config)}.npy"
        if path.is_file():
            try:
                vectors = np.load(path)
            except (OSError, ValueError):
                vectors = None
            if vectors is not None and len(vectors) == len(unique):
                say(progress, f"sentence embeddings: {len(unique)} texts reused from the cache")
                index = {t: i for i, t in enumerate(unique)}
                return vectors[[index[t] for t in texts]]
    vectors = _encode(unique, config, progress)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(path)
    index = {t: i for i, t in enumerate(unique)}
    return vectors[[index[t] for t in texts]]


SENTENCE_VERSION = 1  # bump when the pooling or normalisation changes
SENTENCE_MAX_LENGTH = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2


class SentenceManifest(BaseModel):
    """Describes a complete sentence-embedding folder."""

    key: str
    encoder: str
    encoder_id: str
    max_length: int
    version: int
    dim: int
    texts: int
    splits: dict[str, int]


@dataclass
class SentenceResult:
    """Where the embeddings are, and whether they were reused from the cache."""

    path: Path
    reused: bool


def sentence_key(fingerprints: dict[str, str], encoder_id: str, max_length: int) -> str:
    """The cache key of a sentence-embedding folder."""
    payload = {"splits": fingerprints, "encoder": encoder_id, "max_length": max_length, "version": SENTENCE_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def sentence_folder(cache_dir: str | Path, fingerprints: dict[str, str], config: EncoderConfig) -> Path:
    """The folder :func:`embed_sentences` uses for these splits and this encoder."""
    key = sentence_key(fingerprints, encoder_identity(config.encoder), SENTENCE_MAX_LENGTH)
    slug = Path(config.encoder).name.replace(" ", "_")[:40]
    return Path(cache_dir) / "sentences" / f"{slug}-v{SENTENCE_VERSION}-{key}"


def embed_sentences(
    splits: dict[str, pd.DataFrame],
    fingerprints: dict[str, str],
    config: EncoderConfig,
    cache_dir: str | Path,
    progress: Progress | None = None,
) -> SentenceResult:
    """Return the sentence-embedding folder for ``splits``, computing it only when no complete one exists.
    ``progress``, if given, gets the reuse, or the size, throttled progress and time of the encoding."""
    folder = sentence_folder(cache_dir, fingerprints, config)
    if (folder / MANIFEST).is_file():
        say(progress, f"sentence embeddings: reused {folder}")
        return SentenceResult(path=folder, reused=True)
    texts = sorted({text for frame in splits.values() for column in ("claim", "evidence") for text in frame[column]})
    pairs = sum(len(frame) for frame in splits.values())
    say(progress, f"sentence embeddings: {len(texts)} distinct claims and evidences of {pairs} pairs")
    vectors = embed_texts(texts, config.model_copy(update={"max_length": SENTENCE_MAX_LENGTH}), progress=progress)
    row = {text: i for i, text in enumerate(texts)}

    def build(tmp: Path) -> None:
        for name, frame in splits.items():
            (tmp / name).mkdir()
            for column in ("claim", "evidence"):
                np.save(tmp / name / f"{column}.npy", vectors[[row[text] for text in frame[column]]])
        manifest = SentenceManifest(
            key=folder.name.rsplit("-", 1)[-1],  # the sentence_key part of the folder name
            encoder=config.encoder,
            encoder_id=encoder_identity(config.encoder),
            max_length=SENTENCE_MAX_LENGTH,
            version=SENTENCE_VERSION,
            dim=int(vectors.shape[1]),
            texts=len(texts),
            splits={name: len(frame) for name, frame in splits.items()},
        )
        (tmp / MANIFEST).write_text(json.dumps(manifest.model_dump(), indent=2))

    published = build_folder_atomic(folder, build, MANIFEST)
    return SentenceResult(path=folder, reused=not published)


def load_sentence_pairs(folder: str | Path, split: str) -> np.ndarray:
    """``[u, v, |u-v|, u*v]`` of the claim embedding u and evidence embedding v, float32 [pairs, 4*dim]."""
    u = np.load(Path(folder) / split / "claim.npy")
    v = np.load(Path(folder) / split / "evidence.npy")
    return np.hstack([u, v, np.abs(u - v), u * v])
