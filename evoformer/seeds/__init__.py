"""The seed library: hand-written candidate programs that start every evolution."""

from __future__ import annotations

from pathlib import Path

SEED_DIR = Path(__file__).resolve().parent


def seed_files(folder: str | Path | None = None) -> list[Path]:
    """The ``*.py`` programs of a seed folder (default: this library), sorted by name."""
    folder = Path(folder) if folder else SEED_DIR
    files = sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))
    if not files:
        raise FileNotFoundError(f"no seed programs (*.py) in {folder}")
    return files
