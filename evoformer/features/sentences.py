"""Separate sentence embeddings of claims and evidences (bi-encoder use of the frozen encoder).

Each unique text is encoded on its own, mean-pooled over its tokens and L2-normalised, as
sentence-transformers does for all-MiniLM-L6-v2. One folder per (split fingerprints, encoder
content hash, max_length, version) holds ``<split>/claim.npy`` and ``<split>/evidence.npy``
(float32, [pairs, dim], row order of the split) and a manifest written last; it is built under a
temporary name and renamed into place, like the token features.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel

from evoformer.features.encoder import EncoderConfig, encoder_identity, load_encoder
from evoformer.features.store import MANIFEST

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
    splits: dict[str, pd.DataFrame], fingerprints: dict[str, str], config: EncoderConfig, cache_dir: str | Path
) -> SentenceResult:
    """Return the sentence-embedding folder for ``splits``, computing it only when no complete one exists."""
    folder = sentence_folder(cache_dir, fingerprints, config)
    if (folder / MANIFEST).is_file():
        return SentenceResult(path=folder, reused=True)
    texts = sorted({text for frame in splits.values() for column in ("claim", "evidence") for text in frame[column]})
    tokenizer, model = load_encoder(config.encoder)
    vectors = _encode_texts(texts, tokenizer, model, config.batch_size)
    row = {text: i for i, text in enumerate(texts)}
    tmp = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
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
        try:
            tmp.rename(folder)
        except OSError:
            if not (folder / MANIFEST).is_file():  # not a concurrent writer that finished first
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return SentenceResult(path=folder, reused=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SentenceResult(path=folder, reused=False)


def _encode_texts(texts: list[str], tokenizer, model, batch_size: int) -> np.ndarray:
    """Mean-pooled, L2-normalised float32 embeddings of ``texts``, in length-sorted batches."""
    import torch

    out = np.zeros((len(texts), int(model.config.hidden_size)), dtype=np.float32)
    order = np.argsort([len(text) for text in texts], kind="stable")
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            inputs = tokenizer(
                [texts[i] for i in batch], padding=True, truncation=True, max_length=SENTENCE_MAX_LENGTH, return_tensors="pt"
            )
            hidden = model(**inputs).last_hidden_state
            mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[batch] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out


def load_sentence_pairs(folder: str | Path, split: str) -> np.ndarray:
    """``[u, v, |u-v|, u*v]`` of the claim embedding u and evidence embedding v, float32 [pairs, 4*dim]."""
    u = np.load(Path(folder) / split / "claim.npy")
    v = np.load(Path(folder) / split / "evidence.npy")
    return np.hstack([u, v, np.abs(u - v), u * v])
