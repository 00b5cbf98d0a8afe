"""Frozen features: correct values, fp16 storage, key-based reuse, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from evoformer.features import EncoderConfig, featurize_splits, load_encoder, load_manifest, load_split_features
from evoformer.features import featurize as featurize_module
from evoformer.features.encoder import EncoderNotFoundError, encoder_identity, resolve_encoder_path

pytestmark = pytest.mark.integration  # trains in the sandbox, runs flows or starts servers


def test_layout_dtype_and_manifest(small_features, small_splits) -> None:
    manifest = load_manifest(small_features.path)
    assert manifest.encoder == "all-MiniLM-L6-v2" and manifest.dim == 384 and manifest.max_length == 128
    assert manifest.layers == EncoderConfig().layers
    for name, frame in small_splits.frames.items():
        feats = load_split_features(small_features.path, name)
        assert feats.states.dtype == np.float16
        assert len(feats) == len(frame) == manifest.splits[name].pairs
        assert feats.states.shape == (manifest.splits[name].tokens, 384)
        assert feats.lengths.max() <= 128
        assert ((feats.claim_lengths > 2) & (feats.claim_lengths < feats.lengths)).all()
        assert manifest.splits[name].fingerprint == small_splits.fingerprints[name]
    names = {p.name for p in Path(small_features.path).rglob("*") if p.is_file()}
    assert not any("label" in n for n in names), "labels must not be stored with the features"


def test_states_match_unpadded_encoding(small_features, small_splits) -> None:
    """Length-sorted, dynamically padded batches give the same states as encoding one pair alone:
    the mean of the last ``layers`` hidden layers."""
    tokenizer, model = load_encoder("all-MiniLM-L6-v2")
    layers = EncoderConfig().layers
    feats = load_split_features(small_features.path, "val")
    frame = small_splits["val"]
    for i in (0, len(frame) // 2, len(frame) - 1):
        inputs = tokenizer(
            frame["claim"][i], frame["evidence"][i], truncation=True, max_length=128, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = model(**inputs, output_hidden_states=True).hidden_states
            expected = torch.stack(hidden[-layers:]).mean(0)[0].numpy()
        x, mask = feats.batch([i])
        assert mask.sum() == expected.shape[0]
        np.testing.assert_allclose(x[0, : expected.shape[0]], expected, atol=2e-2, rtol=1e-2)


def test_batch_padding_and_mask(small_features) -> None:
    feats = load_split_features(small_features.path, "train")
    idx = [int(np.argmin(feats.lengths)), int(np.argmax(feats.lengths))]
    x, mask = feats.batch(idx)
    assert x.shape == (2, feats.lengths.max(), 384) and x.dtype == np.float32
    assert mask[0].sum() == feats.lengths.min() and mask[1].all()
    assert np.all(x[0][~mask[0]] == 0)


def test_pooling_matches_manual_means(small_features) -> None:
    feats = load_split_features(small_features.path, "test")
    i = 3
    tokens = np.asarray(feats.states[feats.offsets[i] : feats.offsets[i + 1]], dtype=np.float32)
    a = feats.claim_lengths[i]
    np.testing.assert_allclose(feats.mean_pooled()[i], tokens.mean(0), atol=1e-4)
    pooled = feats.pair_pooled()[i]
    u, v = tokens[:a].mean(0), tokens[a:].mean(0)
    np.testing.assert_allclose(pooled, np.concatenate([u, v, np.abs(u - v), u * v]), atol=1e-4)


def test_second_run_reuses_cache_without_loading_encoder(
    small_features, small_splits, feature_cache_dir, monkeypatch
) -> None:
    states_file = Path(small_features.path) / "train" / "states.npy"
    before = os.stat(states_file)

    def no_encoder(*_args, **_kwargs):
        raise AssertionError("the encoder was loaded although the cache is complete")

    monkeypatch.setattr(featurize_module, "load_encoder", no_encoder)
    again = featurize_splits(
        small_splits.frames, small_splits.fingerprints, EncoderConfig(), feature_cache_dir, progress=False
    )
    assert again.reused and again.path == small_features.path
    after = os.stat(states_file)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_key_changes_with_max_length_and_data(small_splits, tmp_path) -> None:
    part = {name: frame.head(6) for name, frame in small_splits.frames.items()}
    from evoformer.data.splits import fingerprint

    fps = {name: fingerprint(frame) for name, frame in part.items()}
    lines: list[str] = []
    a = featurize_splits(part, fps, EncoderConfig(max_length=32), tmp_path, progress=False, log=lines.append)
    assert [line for line in lines if "6/6 pairs (100%)" in line] == [
        line for line in lines if line.startswith(tuple(f"featurize {s}: 6/6" for s in part))
    ]
    assert {line.split(":")[0] for line in lines if "6/6 pairs (100%)" in line} == {f"featurize {s}" for s in part}
    b = featurize_splits(part, fps, EncoderConfig(max_length=16), tmp_path, progress=False)
    assert not a.reused and not b.reused and a.path != b.path
    assert load_split_features(b.path, "train").lengths.max() <= 16
    changed = dict(fps, train="0" * 64)
    c = featurize_splits(part, changed, EncoderConfig(max_length=32), tmp_path, progress=False)
    assert c.path != a.path


def test_layers_option_averages_the_last_hidden_layers(small_splits, tmp_path) -> None:
    """layers=1 is the last hidden layer; layers=N is its own cache folder with the mean of the last N."""
    part = {name: frame.head(3) for name, frame in small_splits.frames.items()}
    from evoformer.data.splits import fingerprint

    fps = {name: fingerprint(frame) for name, frame in part.items()}
    last = featurize_splits(part, fps, EncoderConfig(max_length=32, layers=1), tmp_path, progress=False)
    three = featurize_splits(part, fps, EncoderConfig(max_length=32, layers=3), tmp_path, progress=False)
    assert last.path != three.path and load_manifest(three.path).layers == 3
    tokenizer, model = load_encoder("all-MiniLM-L6-v2")
    frame = part["train"]
    inputs = tokenizer(frame["claim"][0], frame["evidence"][0], truncation=True, max_length=32, return_tensors="pt")
    with torch.inference_mode():
        out = model(**inputs, output_hidden_states=True)
    n = inputs["input_ids"].shape[1]
    x_last, _ = load_split_features(last.path, "train").batch([0])
    x_three, _ = load_split_features(three.path, "train").batch([0])
    np.testing.assert_allclose(x_last[0, :n], out.last_hidden_state[0].numpy(), atol=2e-2, rtol=1e-2)
    np.testing.assert_allclose(
        x_three[0, :n], torch.stack(out.hidden_states[-3:]).mean(0)[0].numpy(), atol=2e-2, rtol=1e-2
    )
    assert np.abs(x_three[0, :n] - x_last[0, :n]).max() > 0.1
    with pytest.raises(ValueError, match="layers=7"):
        featurize_splits(part, fps, EncoderConfig(max_length=32, layers=7), tmp_path, progress=False)


def test_interrupted_featurize_leaves_nothing_behind(small_splits, tmp_path, monkeypatch) -> None:
    part = {name: frame.head(4) for name, frame in small_splits.frames.items()}
    from evoformer.data.splits import fingerprint

    fps = {name: fingerprint(frame) for name, frame in part.items()}
    original = featurize_module._encode_split
    calls = []

    def crash_on_second_split(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated kill")
        return original(*args, **kwargs)

    monkeypatch.setattr(featurize_module, "_encode_split", crash_on_second_split)
    with pytest.raises(KeyboardInterrupt):
        featurize_splits(part, fps, EncoderConfig(max_length=24), tmp_path, progress=False)
    assert list((tmp_path / "features").iterdir()) == []
    monkeypatch.setattr(featurize_module, "_encode_split", original)
    done = featurize_splits(part, fps, EncoderConfig(max_length=24), tmp_path, progress=False)
    assert not done.reused and (done.path / "manifest.json").is_file()


def test_local_encoder_folder_and_unknown_encoder(tmp_path) -> None:
    folder = resolve_encoder_path("all-MiniLM-L6-v2")
    assert resolve_encoder_path(str(folder)) == folder
    assert encoder_identity(str(folder)) == encoder_identity("all-MiniLM-L6-v2")
    with pytest.raises(EncoderNotFoundError, match="not a local Hugging Face model folder"):
        resolve_encoder_path(str(tmp_path))


def test_progress_log_every_tenth_and_at_the_end() -> None:
    from evoformer.progress import ProgressLog as _ProgressLog  # featurize's progress lines

    lines: list[str] = []
    report = _ProgressLog(lines.append, "featurize train", 100, seconds=0.0)  # no time floor: every tenth
    for _ in range(33):
        report.advance(3)  # 99 pairs: a line at 12, 24, ..., 96
    report.advance(1)
    assert [line.split(": ")[1].split(" pairs")[0] for line in lines] == [f"{n}/100" for n in range(12, 97, 12)] + [
        "100/100"
    ]
    _ProgressLog(None, "x", 10).advance(10)  # no log: nothing to call
