"""Load claim/evidence pairs from the Climate-FEVER release, the hub, or generic tables.

Every row is validated with :class:`~evoformer.data.records.PairRecord`. A bad row raises
:class:`MalformedRowError` naming file and line, unless ``on_bad_rows="skip"``, in which case
it is skipped and counted in the :class:`LoadReport`. Nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field, ValidationError

from evoformer.config.data import DataSourceConfig  # noqa: F401  (declared with the other settings)
from evoformer.data.errors import DataSourceError, MalformedRowError
from evoformer.data.records import ClimateFeverClaim, PairRecord

HUB_PREFIX = "hub"
SHARED_CLIMATE_FEVER = Path("..") / "shared" / "data" / "climate-fever" / "climate-fever.jsonl"
PAIR_COLUMNS = ["pair_id", "claim_id", "claim", "evidence", "label"]
MAX_REPORTED_REJECTIONS = 50


class RejectedRow(BaseModel):
    """A row that failed validation and was skipped."""

    location: str
    reason: str


class LoadReport(BaseModel):
    """What was read, what was kept and what was skipped, and why."""

    source: str
    kind: str
    rows_read: int = 0
    rows_skipped: int = 0
    pairs: int = 0
    label_counts: dict[str, int] = Field(default_factory=dict)
    rejected: list[RejectedRow] = Field(
        default_factory=list, description=f"The first {MAX_REPORTED_REJECTIONS} skipped rows."
    )


@dataclass
class LoadedData:
    """Validated pairs (columns :data:`PAIR_COLUMNS`) and the report of how they were read."""

    frame: pd.DataFrame
    report: LoadReport


def default_source_candidates(cwd: Path | None = None) -> list[Path]:
    """Places where the shared Climate-FEVER file is looked for: beside the CWD and the checkout."""
    cwd = cwd or Path.cwd()
    checkout = Path(__file__).resolve().parents[2]
    return [(cwd / SHARED_CLIMATE_FEVER).resolve(), (checkout / SHARED_CLIMATE_FEVER).resolve()]


def resolve_source(explicit: str | None) -> str:
    """Pick the source: explicit value, then ``$EVOFORMER_DATA``, then the shared file, then the hub."""
    if explicit:
        return explicit
    from_env = os.environ.get("EVOFORMER_DATA")
    if from_env:
        return from_env
    for candidate in default_source_candidates():
        if candidate.is_file():
            return str(candidate)
    return HUB_PREFIX


def load_pairs(config: DataSourceConfig) -> LoadedData:
    """Load and validate all pairs of the configured source."""
    source = resolve_source(config.source)
    if source == HUB_PREFIX or source.startswith(HUB_PREFIX + ":"):
        dataset = source.partition(":")[2] or "climate_fever"
        return _collect(f"hub:{dataset}[{config.hub_split}]", "hub", _hub_rows(dataset, config.hub_split), config)
    path = Path(source).expanduser()
    if not path.is_file():
        raise DataSourceError(
            f"data source {str(path)!r} does not exist or is not a file. Pass --source PATH, set "
            "EVOFORMER_DATA, or use 'hub' for the Hugging Face copy."
        )
    kind = _detect_format(path, config.format)
    if kind == "climate-fever":
        return _collect(str(path), kind, _climate_fever_jsonl_rows(path), config)
    return _collect(str(path), f"pairs-{_table_kind(path)}", _table_rows(path, config), config)


# --- row producers -------------------------------------------------------------------------------
# Each yields (location, builder) where builder() returns validated pairs or raises.

RowBuilder = Callable[[], list[PairRecord]]


def _collect(source: str, kind: str, rows: Iterable[tuple[str, RowBuilder]], config: DataSourceConfig) -> LoadedData:
    report = LoadReport(source=source, kind=kind)
    pairs: list[PairRecord] = []
    for location, build in rows:
        report.rows_read += 1
        try:
            pairs.extend(build())
        except (ValidationError, ValueError, TypeError, KeyError) as exc:
            reason = _describe(exc)
            if config.on_bad_rows == "error":
                raise MalformedRowError(location, reason) from exc
            report.rows_skipped += 1
            if len(report.rejected) < MAX_REPORTED_REJECTIONS:
                report.rejected.append(RejectedRow(location=location, reason=reason))
    if not pairs:
        raise DataSourceError(f"{source}: no valid pairs (read {report.rows_read} rows, skipped {report.rows_skipped})")
    frame = pd.DataFrame([p.model_dump() for p in pairs])
    frame.insert(0, "pair_id", range(len(frame)))
    frame = frame[PAIR_COLUMNS]
    report.pairs = len(frame)
    report.label_counts = {str(k): int(v) for k, v in Counter(frame["label"]).most_common()}
    return LoadedData(frame=frame, report=report)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "row"
            parts.append(f"{where}: {err['msg']}")
        return "; ".join(parts)
    return f"{type(exc).__name__}: {exc}"


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines as bytes, numbered from 1; decoding happens per row, so a bad byte is one bad row."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def _parse_json_line(line: bytes) -> object:
    try:
        return json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"invalid UTF-8 at byte {exc.start}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})") from exc


def _climate_fever_jsonl_rows(path: Path) -> Iterator[tuple[str, RowBuilder]]:
    for number, line in _lines(path):
        yield f"{path}:{number}", _json_claim_builder(line)


def _json_claim_builder(line: bytes) -> RowBuilder:
    def build() -> list[PairRecord]:
        obj = _parse_json_line(line)
        return ClimateFeverClaim.model_validate(obj).pairs()

    return build


def _hub_rows(dataset: str, split: str) -> Iterator[tuple[str, RowBuilder]]:
    try:
        import datasets

        table = datasets.load_dataset(dataset, split=split)
    except Exception as exc:  # noqa: BLE001 - any failure here means "the hub is not usable"
        raise DataSourceError(
            f"could not load {dataset!r} from the Hugging Face hub ({type(exc).__name__}: {exc}). "
            "If this machine is offline, point EvoFormer at a local copy instead: "
            "`evoformer data --source /path/to/climate-fever.jsonl` or "
            "`export EVOFORMER_DATA=/path/to/climate-fever.jsonl`."
        ) from exc
    for index, row in enumerate(table):
        yield f"hub:{dataset}[{split}] row {index}", _claim_builder(row)


def _claim_builder(row: object) -> RowBuilder:
    """Validate one Climate-FEVER claim record (a hub row) into its pairs when called."""
    return lambda: ClimateFeverClaim.model_validate(row).pairs()


def _table_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in {".csv", ".tsv"}:
        return "csv"
    if suffix in {".jsonl", ".ndjson"}:
        return "jsonl"
    if suffix in {".parquet", ".pq"}:
        return "parquet"
    raise DataSourceError(f"{path}: unsupported file type {suffix!r}; use .jsonl, .csv, .tsv or .parquet")


def _detect_format(path: Path, requested: str) -> str:
    if requested != "auto":
        return requested
    if _table_kind(path) != "jsonl":
        return "pairs"
    for _, line in _lines(path):
        try:
            first = _parse_json_line(line)
        except ValueError:
            return "pairs"  # the row loop reports the error with its line number
        return "climate-fever" if isinstance(first, dict) and "evidences" in first else "pairs"
    raise DataSourceError(f"{path}: the file is empty")


def _table_rows(path: Path, config: DataSourceConfig) -> Iterator[tuple[str, RowBuilder]]:
    kind = _table_kind(path)
    if kind == "jsonl":
        for number, line in _lines(path):
            yield f"{path}:{number}", _json_pair_builder(line, config)
        return
    frame = _read_frame(path, kind)
    _require_columns(path, frame.columns, config)
    for index, row in enumerate(frame.to_dict(orient="records")):
        location = f"{path}:{index + 2}" if kind == "csv" else f"{path}:row {index}"
        yield location, _mapping_pair_builder(row, config)


def _mapping_pair_builder(row: dict[str, Any], config: DataSourceConfig) -> RowBuilder:
    """Build the pair of one table row (a column -> value mapping) when called."""
    return lambda: [_pair_from_mapping(row, config)]


def _read_frame(path: Path, kind: str) -> pd.DataFrame:
    try:
        if kind == "csv":
            sep = "\t" if path.suffix.lower() == ".tsv" else ","
            return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - report any reader failure with the path
        raise DataSourceError(f"{path}: cannot be read as {kind} ({type(exc).__name__}: {exc})") from exc


def _require_columns(path: Path, columns: Iterable[str], config: DataSourceConfig) -> None:
    wanted = [config.claim_column, config.evidence_column, config.label_column]
    if config.claim_id_column:
        wanted.append(config.claim_id_column)
    missing = [c for c in wanted if c not in set(columns)]
    if missing:
        raise DataSourceError(
            f"{path}: missing column(s) {missing}; found {sorted(columns)}. "
            "Set claim_column / evidence_column / label_column (--claim-column ...) to match the file."
        )


def _json_pair_builder(line: bytes, config: DataSourceConfig) -> RowBuilder:
    def build() -> list[PairRecord]:
        obj = _parse_json_line(line)
        if not isinstance(obj, dict):
            raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
        return [_pair_from_mapping(obj, config)]

    return build


def _pair_from_mapping(row: dict[str, Any], config: DataSourceConfig) -> PairRecord:
    missing = [c for c in (config.claim_column, config.evidence_column, config.label_column) if c not in row]
    if missing:
        raise ValueError(f"missing field(s) {missing}")
    claim = row[config.claim_column]
    if config.claim_id_column:
        claim_id = row.get(config.claim_id_column)
        if claim_id is None or (isinstance(claim_id, float) and claim_id != claim_id):
            raise ValueError(f"missing claim id in column {config.claim_id_column!r}")
    else:
        claim_id = claim_text_id(claim) if isinstance(claim, str) else None
    return PairRecord(
        claim_id=str(claim_id) if claim_id is not None else "",
        claim=claim,
        evidence=row[config.evidence_column],
        label=row[config.label_column],
    )


def normalize_claim(text: str) -> str:
    """The form under which two claims count as the same claim: case- and whitespace-insensitive."""
    return " ".join(text.lower().split())


def claim_text_id(text: str) -> str:
    """A stable id derived from a claim's normalised text."""
    return "c" + hashlib.sha1(normalize_claim(text).encode("utf-8")).hexdigest()[:16]
