"""A candidate program: one Python source defining ``build_model(input_dim, num_classes)``.

The model's ``forward(x, mask)`` takes frozen token states ``x`` [B, T, D] (float) and ``mask``
[B, T] (bool, True = real token) and returns logits [B, num_classes]; in training mode it may return
a tuple of such logits (ensemble heads, one loss each). An optional prelude
(static helper code) is prepended to every program.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

from pydantic import BaseModel, Field

from evoformer import pyast
from evoformer.candidates.canonical import canonical_tree

ENTRY_POINT = "build_model"
KEPT_NAMES = frozenset({ENTRY_POINT, "forward"})  # what the harness and torch call by name: renaming them is a change


class CandidateProgram(BaseModel):
    """Source of one candidate, with the prelude that is prepended to it."""

    name: str = Field(min_length=1, max_length=120)
    source: str
    prelude: str = ""

    @classmethod
    def from_file(cls, path: str | Path, prelude: str | Path | None = None) -> CandidateProgram:
        path = Path(path)
        prelude_text = Path(prelude).read_text() if prelude else ""
        return cls(name=path.stem, source=path.read_text(), prelude=prelude_text)

    def full_source(self) -> str:
        """The code that is checked and run: prelude, then the program."""
        if not self.prelude.strip():
            return self.source
        return f"{self.prelude.rstrip()}\n\n# --- program ---\n{self.source}"

    def program_hash(self) -> str:
        """Hash of the normalised AST of the full source (formatting and comments do not count)."""
        try:
            text = ast.dump(pyast.parse(self.full_source()), annotate_fields=False)
        except (SyntaxError, RecursionError, MemoryError, ValueError):
            text = self.full_source()
        return hashlib.sha256(text.encode()).hexdigest()

    def structure_hash(self) -> str:
        """Hash of the full source's canonical AST (:mod:`evoformer.candidates.canonical`): equal for two
        programs that differ only in docstrings, comments, formatting and the names they bind; constants,
        layers, the entry point and whatever the program does not define still count. An unparseable
        source hashes its text, as :meth:`program_hash` does."""
        try:
            text = ast.dump(canonical_tree(self.full_source(), keep=KEPT_NAMES), annotate_fields=False)
        except (SyntaxError, RecursionError, MemoryError, ValueError):
            text = self.full_source()
        return hashlib.sha256(text.encode()).hexdigest()
