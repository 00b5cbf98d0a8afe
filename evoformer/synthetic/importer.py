"""Import existing synthetic files of different shapes into validated :class:`SyntheticExample` rows.

Shapes (detected per row): objects with claim/evidence keys (any case; ``"claim label"``,
``label``... for the label), and ``[claim, evidence]`` or ``[claim, evidence, label]`` lists.
Files: ``.json`` (one array, read tolerantly) and ``.jsonl``. The label comes from the
``label`` option, else the row, else the file name (``supports*``, ``refutes*``, ``nei*``).
Every rejected row is counted with its ``<file>:<line>`` and reason.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from evoformer.config.synthesize import ImportConfig  # noqa: F401  (declared with the other settings)
from evoformer.data.errors import DataSourceError
from evoformer.data.sources import MAX_REPORTED_REJECTIONS
from evoformer.labels import normalize_label
from evoformer.synthetic.jsontext import Element, Skipped, array_elements
from evoformer.synthetic.records import Rejection, SyntheticExample

SHARED_SYNTHETIC_SEED = Path("..") / "shared" / "data" / "synthetic-seed"
SUFFIXES = (".json", ".jsonl")
_CLAIM_KEYS = {"claim"}
_EVIDENCE_KEYS = {"evidence"}
_LABEL_KEYS = {"label", "claimlabel", "evidencelabel"}
_FILENAME_LABELS = {
    "SUPPORTS": re.compile(r"support"),
    "REFUTES": re.compile(r"refut"),
    "NOT_ENOUGH_INFO": re.compile(r"(^|[^a-z])nei([^a-z]|$)|not[_-]?enough"),
}


class FileReport(BaseModel):
    """What one file gave: rows, examples, rejections and where labels came from."""

    path: str
    generator: str
    shapes: dict[str, int] = Field(default_factory=dict)
    rows_read: int = 0
    examples: int = 0
    rejected: int = 0
    label_sources: dict[str, int] = Field(default_factory=dict)
    labels: dict[str, int] = Field(default_factory=dict)
    rejections: list[Rejection] = Field(default_factory=list, description=f"The first {MAX_REPORTED_REJECTIONS}.")


class ImportReport(BaseModel):
    files: list[FileReport] = Field(default_factory=list)
    rows_read: int = 0
    examples: int = 0
    rejected: int = 0


@dataclass
class Imported:
    examples: list[SyntheticExample]
    report: ImportReport


def default_import_paths(cwd: Path | None = None) -> list[str]:
    """The shared synthetic-seed folder, beside the CWD or the checkout, when present."""
    checkout = Path(__file__).resolve().parents[2]
    for base in (cwd or Path.cwd(), checkout):
        folder = (base / SHARED_SYNTHETIC_SEED).resolve()
        if folder.is_dir():
            return [str(folder)]
    return []


def expand_paths(paths: list[str]) -> list[Path]:
    """Files named, plus the *.json / *.jsonl files under folders named (sorted); missing paths raise."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
            if not found:
                raise DataSourceError(f"{path}: no *.json or *.jsonl files in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataSourceError(f"synthetic file {str(path)!r} does not exist")
    return files


def filename_label(path: Path) -> str | None:
    """SUPPORTS / REFUTES / NOT_ENOUGH_INFO when exactly one of them is named in the file name."""
    stem = path.stem.lower()
    found = [label for label, pattern in _FILENAME_LABELS.items() if pattern.search(stem)]
    return found[0] if len(found) == 1 else None


def _key(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


def row_fields(value: object) -> tuple[str, object, object, object]:
    """(shape, claim, evidence, label or None) of one row; raises ValueError for other shapes."""
    if isinstance(value, dict):
        by_key = {_key(k): v for k, v in value.items() if isinstance(k, str)}
        claim = next((by_key[k] for k in _CLAIM_KEYS if k in by_key), None)
        evidence = next((by_key[k] for k in _EVIDENCE_KEYS if k in by_key), None)
        if claim is None or evidence is None:
            missing = [n for n, v in (("claim", claim), ("evidence", evidence)) if v is None]
            raise ValueError(f"object without {' and '.join(missing)} (keys: {sorted(value)[:6]})")
        label = next((by_key[k] for k in _LABEL_KEYS if k in by_key), None)
        return "object", claim, evidence, label
    if isinstance(value, list):
        if len(value) not in (2, 3):
            raise ValueError(f"expected [claim, evidence] or [claim, evidence, label], got a list of {len(value)}")
        return "pair" if len(value) == 2 else "triple", value[0], value[1], value[2] if len(value) == 3 else None
    raise ValueError(f"expected an object or a [claim, evidence] list, got {type(value).__name__}")


def _rows(path: Path) -> Iterator[Element | Skipped]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 (byte {exc.start})") from exc
    if path.suffix.lower() == ".jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    yield Element(number, json.loads(line))
                except json.JSONDecodeError as exc:
                    yield Skipped(number, number, f"invalid JSON ({exc.msg} at column {exc.colno})")
        return
    yield from array_elements(text, flat_rows=True)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in exc.errors())
    return str(exc)


def import_file(path: Path, config: ImportConfig) -> tuple[list[SyntheticExample], FileReport]:
    """Examples of one file and its report (a wholly unreadable file is one rejection)."""
    generator = config.generator or path.parent.name or "unknown"
    report = FileReport(path=str(path), generator=generator)
    option_label = normalize_label(config.label) if config.label else None
    name_label = filename_label(path) if config.label_from_filename else None
    examples: list[SyntheticExample] = []
    shapes: Counter[str] = Counter()
    sources: Counter[str] = Counter()

    def reject(origin: str, reason: str) -> None:
        report.rejected += 1
        if len(report.rejections) < MAX_REPORTED_REJECTIONS:
            report.rejections.append(Rejection(origin=origin, reason=reason))

    try:
        for item in _rows(path):
            report.rows_read += 1
            if isinstance(item, Skipped):
                where = f"{path}:{item.line}" + (f"-{item.end_line}" if item.end_line != item.line else "")
                reject(where, item.reason)
                continue
            origin = f"{path}:{item.line}"
            try:
                shape, claim, evidence, row_label = row_fields(item.value)
                shapes[shape] += 1
                label: object  # a row's raw label: SyntheticExample validates (and normalises) it
                if option_label is not None:
                    label, how = option_label, "option"
                elif row_label is not None:
                    label, how = row_label, "row"
                elif name_label is not None:
                    label, how = name_label, "filename"
                else:
                    raise ValueError("no label: the row has none, the file name names none; pass a label option")
                examples.append(
                    SyntheticExample(
                        claim=claim,
                        evidence=evidence,
                        label=label,
                        source=f"import:{path.parent.name}/{path.name}",
                        generator=generator,
                        origin=origin,
                    )
                )
                sources[how] += 1
            except (ValidationError, ValueError, TypeError) as exc:
                reject(origin, _describe(exc))
    except (OSError, ValueError) as exc:
        report.rows_read += 1
        reject(str(path), f"cannot read the file: {exc}")
    report.examples = len(examples)
    report.shapes = dict(shapes)
    report.label_sources = dict(sources)
    report.labels = dict(Counter(e.label for e in examples))
    return examples, report


def import_files(config: ImportConfig) -> Imported:
    """Every file of ``config.paths``; the report has per-file counts and the rejections."""
    examples: list[SyntheticExample] = []
    report = ImportReport()
    for path in expand_paths(config.paths):
        found, file_report = import_file(path, config)
        examples += found
        report.files.append(file_report)
        report.rows_read += file_report.rows_read
        report.examples += file_report.examples
        report.rejected += file_report.rejected
    return Imported(examples=examples, report=report)
