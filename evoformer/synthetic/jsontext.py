"""Tolerant JSON reading: the elements of a (possibly broken) top-level array, and JSON in LLM prose.

A broken element does not lose the whole file: reading resumes at the next line that starts a
value, and the skipped span is reported with its line numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

_DECODER = json.JSONDecoder()
_ELEMENT_START = re.compile(r"\n[ \t]*[\[{]")
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Element:
    """One decoded array element and the line it starts on."""

    line: int
    value: object


@dataclass(frozen=True)
class Skipped:
    """Text that could not be decoded, from ``line`` to ``end_line``."""

    line: int
    end_line: int
    reason: str


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _skip_blank(text: str, pos: int, also: str = "") -> int:
    while pos < len(text) and (text[pos].isspace() or text[pos] in also):
        pos += 1
    return pos


def _nested_rows(value: object) -> bool:
    """A list whose items are all lists or objects: rows wrapped in a stray ``[``."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, (list, dict)) for v in value)


def array_elements(text: str, flat_rows: bool = False) -> Iterator[Element | Skipped]:
    """Yield the elements of the top-level JSON array in ``text``, recovering from broken ones.

    With ``flat_rows`` (elements are rows: objects, or lists of scalars), an element that is a
    list of rows is taken as a stray ``[``: it is reported as skipped and its rows are read one by
    one. Raises ``ValueError`` when the text is not a JSON array at all.
    """
    pos = _skip_blank(text, 0, "\ufeff")
    if pos >= len(text) or text[pos] != "[":
        raise ValueError("not a JSON array (the file does not start with '[')")
    pos += 1
    while True:
        pos = _skip_blank(text, pos, ",")
        if pos >= len(text):
            yield Skipped(
                _line_of(text, len(text)), _line_of(text, len(text)), "unexpected end of file (no closing ']')"
            )
            return
        if text[pos] == "]":
            rest = text[pos + 1 :].strip()
            if rest:
                line = _line_of(text, pos + 1)
                yield Skipped(line, _line_of(text, len(text)), f"text after the closing ']': {rest[:60]!r}")
            return
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            resume = _ELEMENT_START.search(text, pos + 1)
            stop = resume.start() + 1 if resume else len(text)
            yield Skipped(
                _line_of(text, pos),
                _line_of(text, max(pos, stop - 1)),
                f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
            )
            pos = stop
            continue
        if flat_rows and _nested_rows(value):
            line = _line_of(text, pos)
            yield Skipped(
                line, line, f"stray '[' opening a nested array of {len(value)} rows (its rows are read one by one)"
            )
            pos += 1
            continue
        yield Element(_line_of(text, pos), value)
        pos = end


def json_values_found(text: str) -> Iterator[tuple[object, str]]:
    """Every JSON object or array in ``text`` with how it was found: ``whole`` (the text is JSON),
    ``fenced`` (a fenced block), else ``scan`` (any decodable ``{``/``[`` start, e.g. in a truncated reply)."""
    stripped = text.strip()
    try:
        yield json.loads(stripped), "whole"
        return
    except json.JSONDecodeError:
        pass
    for block in _FENCE.findall(text):
        try:
            yield json.loads(block.strip()), "fenced"
        except json.JSONDecodeError:
            continue
    pos = 0
    while True:
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i >= 0]
        if not starts:
            return
        start = min(starts)
        try:
            value, end = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError:
            pos = start + 1
            continue
        yield value, "scan"
        pos = end


def json_values(text: str) -> Iterator[object]:
    """The JSON values of :func:`json_values_found`, without how they were found."""
    for value, _ in json_values_found(text):
        yield value
