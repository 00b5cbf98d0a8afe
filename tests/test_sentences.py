"""Separate sentence embeddings: values, layout, key-based reuse."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from evoformer.features import EncoderConfig, load_encoder
from evoformer.features import sentences as sentences_module
from evoformer.features.sentences import embed_sentences, load_sentence_pairs

pytestmark = pytest.mark.integration  # trains in the sandbox, runs flows or starts servers


def test_embeddings_match_single_sentence_encoding(small_sentences, small_splits) -> None:
    tokenizer, model = load_encoder("all-MiniLM-L6-v2")
    frame = small_splits["val"]
    claims = np.load(small_sentences.path / "val" / "claim.npy")
    evidences = np.load(small_sentences.path / "val" / "evidence.npy")
    assert claims.shape == evidences.shape == (len(frame), 384)
    np.testing.assert_allclose(np.linalg.norm(claims, axis=1), 1.0, atol=1e-5)
    for i in (0, len(frame) - 1):
        for text, stored in ((frame["claim"][i], claims[i]), (frame["evidence"][i], evidences[i])):
            with torch.inference_mode():
                hidden = model(**tokenizer(text, return_tensors="pt")).last_hidden_state[0].mean(0)
            np.testing.assert_allclose(stored, (hidden / hidden.norm()).numpy(), atol=1e-4)
    pairs = load_sentence_pairs(small_sentences.path, "val")
    u, v = claims[1], evidences[1]
    np.testing.assert_allclose(pairs[1], np.concatenate([u, v, np.abs(u - v), u * v]))


def test_second_run_reuses_sentences_without_loading_encoder(
    small_sentences, small_splits, feature_cache_dir, monkeypatch
) -> None:
    claim_file = small_sentences.path / "train" / "claim.npy"
    before = os.stat(claim_file)

    def no_encoder(*_args, **_kwargs):
        raise AssertionError("the encoder was loaded although the cache is complete")

    monkeypatch.setattr(sentences_module, "load_encoder", no_encoder)
    again = embed_sentences(small_splits.frames, small_splits.fingerprints, EncoderConfig(), feature_cache_dir)
    assert again.reused and again.path == small_sentences.path
    after = os.stat(claim_file)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_key_changes_with_data(small_splits, tmp_path) -> None:
    from evoformer.data.splits import fingerprint

    part = {name: frame.head(3) for name, frame in small_splits.frames.items()}
    fps = {name: fingerprint(frame) for name, frame in part.items()}
    a = embed_sentences(part, fps, EncoderConfig(), tmp_path)
    b = embed_sentences(part, dict(fps, train="0" * 64), EncoderConfig(), tmp_path)
    assert not a.reused and not b.reused and a.path != b.path
    assert (a.path / "manifest.json").is_file() and not list(tmp_path.joinpath("sentences").glob(".*tmp*"))
