"""Text keys and cosine-similarity searches over unit-length embeddings (chunked, numpy only)."""

from __future__ import annotations

import re

import numpy as np

_WORDS = re.compile(r"[a-z0-9]+")
CHUNK = 512


def text_key(text: str) -> str:
    """Case-, whitespace- and punctuation-insensitive form of a text (exact-duplicate matching)."""
    return " ".join(_WORDS.findall(text.lower()))


def pair_key(claim: str, evidence: str) -> str:
    return text_key(claim) + "\x00" + text_key(evidence)


def max_similarity(queries: np.ndarray, corpus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the highest cosine with any corpus row and that row's index (-1, -inf if empty)."""
    best = np.full(len(queries), -np.inf, dtype=np.float32)
    where = np.full(len(queries), -1, dtype=np.int64)
    if len(queries) == 0 or len(corpus) == 0:
        return best, where
    for start in range(0, len(queries), CHUNK):
        sims = queries[start : start + CHUNK] @ corpus.T
        where[start : start + CHUNK] = sims.argmax(axis=1)
        best[start : start + CHUNK] = sims.max(axis=1)
    return best, where


def max_pair_similarity(
    claims: np.ndarray, evidences: np.ndarray, corpus_claims: np.ndarray, corpus_evidences: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pair similarity min(cos claim, cos evidence): for each query pair, its best corpus pair and index."""
    best = np.full(len(claims), -np.inf, dtype=np.float32)
    where = np.full(len(claims), -1, dtype=np.int64)
    if len(claims) == 0 or len(corpus_claims) == 0:
        return best, where
    for start in range(0, len(claims), CHUNK):
        stop = start + CHUNK
        sims = np.minimum(claims[start:stop] @ corpus_claims.T, evidences[start:stop] @ corpus_evidences.T)
        where[start:stop] = sims.argmax(axis=1)
        best[start:stop] = sims.max(axis=1)
    return best, where


def greedy_near_duplicates(claims: np.ndarray, evidences: np.ndarray, threshold: float) -> dict[int, tuple[int, float]]:
    """Rows to drop, each mapped to (the earlier kept row it repeats, similarity); the first of a group stays."""
    dropped: dict[int, tuple[int, float]] = {}
    kept: list[int] = []
    for i in range(len(claims)):
        if kept:
            k = np.asarray(kept)
            sims = np.minimum(claims[k] @ claims[i], evidences[k] @ evidences[i])
            j = int(sims.argmax())
            if sims[j] >= threshold:
                dropped[i] = (int(k[j]), float(sims[j]))
                continue
        kept.append(i)
    return dropped
