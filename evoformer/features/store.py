"""On-disk layout of cached features and a reader for it.

A feature folder holds one sub-folder per split with ``states.npy`` (fp16, all real tokens of
all pairs concatenated, shape [total_tokens, dim]), ``lengths.npy`` (tokens per pair) and
``claim_lengths.npy`` (tokens of the first segment, ``[CLS] claim [SEP]``, per pair). The
attention mask is a prefix mask, so ``lengths`` encodes it exactly; :meth:`SplitFeatures.batch`
rebuilds padded states and the boolean mask. Labels are not stored here: they stay with the
split tables, and test labels never sit beside the features.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel

MANIFEST = "manifest.json"


class SplitManifest(BaseModel):
    fingerprint: str
    pairs: int
    tokens: int


class FeatureManifest(BaseModel):
    """Describes a complete feature folder; written last, so its presence means 'complete'."""

    key: str
    encoder: str
    encoder_id: str
    max_length: int
    layers: int = 1
    dim: int
    dtype: str = "float16"
    splits: dict[str, SplitManifest]
    seconds: float


def padded(spans: list[tuple[np.ndarray, int, int]], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Padded float32 states [B, T, D] and bool mask [B, T] (True = real token) of the token rows
    ``states[start:end]`` of each span (one span per example)."""
    width = max(int(end - start) for _, start, end in spans)
    x = np.zeros((len(spans), width, dim), dtype=np.float32)
    mask = np.zeros((len(spans), width), dtype=bool)
    for row, (states, start, end) in enumerate(spans):
        x[row, : end - start] = states[start:end]
        mask[row, : end - start] = True
    return x, mask


@dataclass
class SplitFeatures:
    """Token states of one split, memory-mapped."""

    states: np.ndarray  # [total_tokens, dim] float16
    lengths: np.ndarray  # [pairs] int32
    claim_lengths: np.ndarray  # [pairs] int32, tokens of the claim segment

    def __post_init__(self) -> None:
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths, dtype=np.int64)])

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def dim(self) -> int:
        return int(self.states.shape[1])

    def batch(self, indices: np.ndarray | list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Padded float32 states [B, T, D] and bool mask [B, T] (True = real token) for ``indices``."""
        return padded([(self.states, self.offsets[i], self.offsets[i + 1]) for i in np.asarray(indices)], self.dim)

    def mean_pooled(self) -> np.ndarray:
        """Mean of each pair's token states, float32 [pairs, dim] (the sentence-transformers pooling)."""
        return self._segment_means(np.zeros_like(self.lengths))[1]

    def pair_pooled(self) -> np.ndarray:
        """``[u, v, |u-v|, u*v]`` of the claim-segment mean u and evidence-segment mean v, [pairs, 4*dim]."""
        u, v = self._segment_means(self.claim_lengths)
        return np.hstack([u, v, np.abs(u - v), u * v])

    def _segment_means(self, first: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        """Means over tokens [0, first) and [first, length) of every pair (an empty segment gives 0)."""
        first = np.clip(first, 0, self.lengths)
        out_a = np.zeros((len(self), self.dim), dtype=np.float32)
        out_b = np.zeros((len(self), self.dim), dtype=np.float32)
        for start in range(0, len(self), chunk):
            stop = min(start + chunk, len(self))
            lo, hi = self.offsets[start], self.offsets[stop]
            block = np.asarray(self.states[lo:hi], dtype=np.float32)
            cumsum = np.concatenate(
                [np.zeros((1, self.dim), np.float32), np.cumsum(block, axis=0, dtype=np.float64).astype(np.float32)]
            )
            begin = self.offsets[start:stop] - lo
            middle = begin + first[start:stop]
            end = self.offsets[start + 1 : stop + 1] - lo
            len_a = np.maximum(middle - begin, 1)[:, None]
            len_b = np.maximum(end - middle, 1)[:, None]
            out_a[start:stop] = (cumsum[middle] - cumsum[begin]) / len_a
            out_b[start:stop] = (cumsum[end] - cumsum[middle]) / len_b
        return out_a, out_b


@dataclass
class PoolRows:
    """Chosen rows of several splits read as one set (a fold's train or val part of the pool
    ``parts[0] + parts[1] + ...``), with :class:`SplitFeatures`' reading interface. Nothing is copied:
    ``batch`` reads each row from its split's memory map."""

    parts: list[SplitFeatures]
    rows: np.ndarray  # [n] int64 row ids into the pool

    def __post_init__(self) -> None:
        starts = np.concatenate([[0], np.cumsum([len(p) for p in self.parts], dtype=np.int64)])
        self.rows = np.asarray(self.rows, dtype=np.int64)
        if len(self.rows) and (self.rows.min() < 0 or self.rows.max() >= starts[-1]):
            raise ValueError(f"pool rows must lie in 0..{starts[-1] - 1}")
        self.part_of = np.searchsorted(starts, self.rows, side="right") - 1
        self.local = self.rows - starts[self.part_of]
        self.lengths = np.array([self.parts[p].lengths[i] for p, i in zip(self.part_of, self.local, strict=True)])
        self.claim_lengths = np.array(
            [self.parts[p].claim_lengths[i] for p, i in zip(self.part_of, self.local, strict=True)]
        )

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def dim(self) -> int:
        return self.parts[0].dim

    def batch(self, indices: np.ndarray | list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Padded float32 states [B, T, D] and bool mask [B, T] for positions ``indices`` of this set."""
        spans = []
        for i in np.asarray(indices):
            part, local = self.parts[self.part_of[i]], self.local[i]
            spans.append((part.states, part.offsets[local], part.offsets[local + 1]))
        return padded(spans, self.dim)


def load_manifest(folder: str | Path) -> FeatureManifest:
    return FeatureManifest.model_validate_json((Path(folder) / MANIFEST).read_text())


def load_split_features(folder: str | Path, split: str) -> SplitFeatures:
    """Open one split of a complete feature folder (memory-mapped, read-only)."""
    base = Path(folder) / split
    return SplitFeatures(
        states=np.load(base / "states.npy", mmap_mode="r"),
        lengths=np.load(base / "lengths.npy"),
        claim_lengths=np.load(base / "claim_lengths.npy"),
    )


def write_manifest(folder: Path, manifest: FeatureManifest) -> None:
    (folder / MANIFEST).write_text(json.dumps(manifest.model_dump(), indent=2))
