"""Atomic writes: a reader (or a resumed run) never sees a half-written file or folder."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` through a unique temporary file beside ``path``, then ``os.replace`` it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_folder_atomic(folder: Path, build: Callable[[Path], None], marker: str) -> bool:
    """Run ``build(tmp)`` on a fresh folder beside ``folder``, then rename it into place (the
    ``marker`` file, written last by ``build``, means complete). Returns False when a concurrent
    writer completed ``folder`` first: theirs is kept. A failed build leaves nothing behind."""
    tmp = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        build(tmp)
        try:
            tmp.rename(folder)
        except OSError:
            if not (folder / marker).is_file():  # not a concurrent writer that finished first
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return False
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return True
