"""SEARCH/REPLACE edits of a parent program (the diff edit mode of the LLM operator).

A reply holds blocks in the format of Aider and OpenEvolve::

    <<<<<<< SEARCH
    lines of the parent
    =======
    the lines that replace them
    >>>>>>> REPLACE

:func:`apply_blocks` applies them in order: an exact match of the SEARCH text first, then a match
of whole lines that ignores whitespace at the line ends (the replacement is re-indented by the
indentation the model got wrong). A block that matches nowhere raises :class:`DiffError` naming it;
unlike OpenEvolve, no block is skipped silently."""

from __future__ import annotations

import re
from dataclasses import dataclass

_BLOCK = re.compile(
    r"^[ \t]*<{5,9} ?SEARCH[^\n]*\n(.*?)^[ \t]*={5,9}[ \t]*\n(.*?)^[ \t]*>{5,9} ?REPLACE[^\n]*$", re.S | re.M
)


class DiffError(ValueError):
    """A SEARCH/REPLACE block cannot be applied; the message names the block and why."""


@dataclass(frozen=True)
class EditBlock:
    """One SEARCH/REPLACE block: ``search`` is replaced by ``replace``."""

    search: str
    replace: str

    def label(self, number: int) -> str:
        first = next((line.strip() for line in self.search.splitlines() if line.strip()), "")
        return f"block {number} (SEARCH starting {first[:80]!r})"


def parse_blocks(text: str | None) -> list[EditBlock]:
    """The SEARCH/REPLACE blocks of ``text`` in order (none: an empty list)."""
    if not text:
        return []
    return [EditBlock(search, replace) for search, replace in _BLOCK.findall(text.replace("\r\n", "\n"))]


def apply_blocks(source: str, blocks: list[EditBlock]) -> str:
    """``source`` with every block applied in order; raises :class:`DiffError` on the first block
    whose SEARCH text is empty or not found (exactly, or line by line ignoring surrounding whitespace)."""
    if not blocks:
        raise DiffError("no SEARCH/REPLACE block")
    text = source if source.endswith("\n") else source + "\n"
    for number, block in enumerate(blocks, 1):
        if not block.search.strip():
            raise DiffError(f"{block.label(number)} has an empty SEARCH part")
        applied = _exact(text, block) or _whitespace_tolerant(text, block)
        if applied is None:
            raise DiffError(f"{block.label(number)} does not match the program")
        text = applied
    return text


def _exact(text: str, block: EditBlock) -> str | None:
    """The first occurrence of the SEARCH text, as is."""
    at = text.find(block.search)
    if at < 0:
        return None
    replace = block.replace
    if block.search.endswith("\n") and replace and not replace.endswith("\n"):
        replace += "\n"
    return text[:at] + replace + text[at + len(block.search) :]


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _whitespace_tolerant(text: str, block: EditBlock) -> str | None:
    """Match lines with surrounding whitespace ignored (blank lines of the SEARCH part too); the
    replacement lines move by the indentation difference of the first matched line (as Aider does)."""
    lines = text.splitlines()
    wanted = [line.strip() for line in block.search.splitlines() if line.strip()]
    if not wanted:
        return None
    for start in range(len(lines)):
        if lines[start].strip() != wanted[0]:
            continue
        matched, at = 0, start
        while at < len(lines) and matched < len(wanted):
            if not lines[at].strip():
                at += 1
                continue
            if lines[at].strip() != wanted[matched]:
                break
            matched, at = matched + 1, at + 1
        if matched < len(wanted):
            continue
        first_search = next(line for line in block.search.splitlines() if line.strip())
        replacement = _reindent(block.replace.splitlines(), _indent(first_search), _indent(lines[start]))
        return "\n".join(lines[:start] + replacement + lines[at:]) + "\n"
    return None


def _reindent(lines: list[str], had: str, wants: str) -> list[str]:
    if had == wants:
        return lines
    out = []
    for line in lines:
        if not line.strip():
            out.append("")
        elif line.startswith(had):
            out.append(wants + line[len(had) :])
        else:
            out.append(wants + line.lstrip())
    return out
