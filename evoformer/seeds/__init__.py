"""The seed library: hand-written candidate programs that start every evolution.

Each seed file is one self-contained program by contract: it is read, hashed, mutated and run in the
sandbox on its own, so it imports nothing from the project or from another seed. Small helpers that
several seeds need (``segments``, ``masked_mean``, ``pair_features``) are therefore repeated in each
seed that uses them; every copy of a same-named top-level helper must stay identical
(``tests/test_seed_helpers.py`` compares them), so a fix to one is made to all.
"""

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
