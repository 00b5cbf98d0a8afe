"""Sentence embeddings from the frozen encoder (mean pooling, unit length) for cosine similarity.

Unique texts are encoded once, in length-sorted batches, and cached on disk under a key of
(encoder content hash, max_length, the texts), so repeated gate runs on the same splits are free.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import numpy as np

from evoformer.features.encoder import EncoderConfig, encoder_identity, load_encoder


def embedding_key(texts: list[str], config: EncoderConfig) -> str:
    """The cache key of the embeddings of ``texts`` (in order)."""
    digest = hashlib.sha256(json.dumps([encoder_identity(config.encoder), config.max_length]).encode())
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def _encode(texts: list[str], config: EncoderConfig) -> np.ndarray:
    import torch

    tokenizer, model = load_encoder(config.encoder)
    encoded = tokenizer(texts, truncation=True, max_length=config.max_length)
    ids = encoded["input_ids"]
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = np.zeros((len(texts), int(model.config.hidden_size)), dtype=np.float32)
    pad = tokenizer.pad_token_id or 0
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
    return out


def embed_texts(texts: list[str], config: EncoderConfig | None = None, cache_dir: str | Path | None = None) -> np.ndarray:
    """Unit-length float32 embeddings ``[len(texts), dim]``; the dot product is the cosine similarity."""
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
                index = {t: i for i, t in enumerate(unique)}
                return vectors[[index[t] for t in texts]]
    vectors = _encode(unique, config)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(path)
    index = {t: i for i, t in enumerate(unique)}
    return vectors[[index[t] for t in texts]]
