"""Orchestrator side of compression: set up the sandbox folder, answer fine-tuning epochs, and turn
the sandbox's predictions and files into honest metrics, sizes and ratios.

Scores come from predictions against labels held here; sizes are read from disk here; parameter
counts are read here from safetensors and ONNX files (torch.save pickles are never loaded here, so
for those the counts are the sandbox's, which equal its source model's)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from evoformer.candidates.evaluate import EarlyStopping, EpochProgress, parse_predictions, read_result
from evoformer.candidates.job import (
    FOLD_FILE,
    JOB_FILE,
    METRICS_FILE,
    PROGRAM_FILE,
    TRAIN_LABELS_FILE,
    WEIGHTS_FILE,
    Status,
)
from evoformer.compression.config import CompressConfig
from evoformer.compression.job import REFERENCE, CompressJob, CompressWorkerResult, VariantOutput
from evoformer.data.folds import Fold
from evoformer.errors import UserError
from evoformer.files import write_text_atomic
from evoformer.labels import LABELS
from evoformer.layout import COMPRESSION_REPORT_FILE
from evoformer.metrics import ClassificationMetrics, classification_metrics
from evoformer.progress import Progress, say
from evoformer.sandbox.limits import SandboxLimits
from evoformer.sandbox.runner import SandboxRun, run_sandboxed

WORKER_MODULE = "evoformer.compression.worker"


class CompressionError(UserError, RuntimeError):
    """The candidate cannot be compressed (missing files, not trained ok)."""


class VariantMetrics(BaseModel):
    """One row of the comparison table. Ratios are against the fp32 model measured in the same run:
    ``speedup_*`` = fp32 latency / variant latency; ``size_ratio`` = fp32 size / variant size."""

    name: str
    technique: str
    status: str
    reason: str = ""
    file: str = ""
    val: ClassificationMetrics | None = None
    test: ClassificationMetrics | None = None
    params_total: int = 0
    params_nonzero: int = 0
    size_bytes: int = 0
    latency_ms: dict[str, float] = Field(default_factory=dict)
    speedup_batch1: float | None = None
    speedup_batch64: float | None = None
    size_ratio: float | None = None
    val_f1_drop: float | None = None
    test_f1_drop: float | None = None
    finetune_epochs: int = 0
    seconds: float = 0.0

    def scores(self) -> tuple[ClassificationMetrics, ClassificationMetrics]:
        """Val and test metrics of a variant that ran (``status == "ok"``)."""
        if self.val is None or self.test is None:
            raise ValueError(f"variant {self.name} has no metrics (status {self.status})")
        return self.val, self.test


class CompressionReport(BaseModel):
    """All variants of one candidate, the chosen best, and how the sandbox went."""

    candidate: str
    status: str
    reason: str = ""
    folder: str
    variants: list[VariantMetrics] = Field(default_factory=list)
    best: str | None = Field(default=None, description="Fastest at batch 1 among variants within max_f1_drop on val.")
    environment: dict[str, str] = Field(default_factory=dict)
    isolation: str = ""
    wall_seconds: float = 0.0
    stderr_tail: str = ""


class VariantStoppers:
    """Early stopping per fine-tuned variant, on val labels that never leave this process.
    With ``progress``, each variant's fine-tuning epochs are reported as they arrive
    (:class:`~evoformer.candidates.evaluate.EpochProgress`, prefixed ``"<desc><variant> fine-tune "``)."""

    def __init__(
        self, y_val: np.ndarray, config: CompressConfig, progress: Progress | None = None, desc: str = ""
    ) -> None:
        self.y_val, self.config, self.progress, self.desc = y_val, config, progress, desc
        self.allowed = config.finetuned_variants()
        self.stoppers: dict[str, EarlyStopping] = {}
        self.hooks: dict[str, EarlyStopping | EpochProgress] = {}

    def __call__(self, message: dict) -> dict:
        name = message.get("variant")
        if name not in self.allowed:
            raise ValueError(f"no fine-tuning was asked for variant {name!r}")
        if name not in self.hooks:
            stopper = EarlyStopping(self.y_val, self.config.finetune.patience, self.config.finetune.max_epochs)
            self.stoppers[name] = stopper
            self.hooks[name] = (
                stopper
                if self.progress is None
                else EpochProgress(stopper, self.progress, f"{self.desc}{name} fine-tune ")
            )
        return self.hooks[name](message)


def plan_line(candidate: str, config: CompressConfig, limits: SandboxLimits) -> str:
    """The start line of a compression: which variants the sandbox will make, and its time limit."""
    parts = ["fp32 reference", *(f"int8 {q}" for q in config.quantizers)]
    if config.onnx_fp32:
        parts.append("onnx-fp32")
    parts += [f"unstructured {s:.0%}" for s in config.sparsities]
    parts += [
        f"structured {r:.0%}" + (" (+ int8)" if config.quantize_structured else "") for r in config.structured_ratios
    ]
    tuned = len(config.sparsities) + len(config.structured_ratios)
    return (
        f"compress {candidate}: {', '.join(parts)}; {tuned} pruned variant(s) fine-tuned up to "
        f"{config.finetune.max_epochs} epochs each; latency {config.latency_repeats} runs per batch size; "
        f"sandbox limit {limits.timeout_s:.0f} s"
    )


def report_lines(report: CompressionReport) -> list[str]:
    """The end lines of a compression: one per variant (status, val macro-F1, batch-1 latency,
    seconds), then the outcome, the best variant and the wall time."""
    lines = []
    for r in report.variants:
        if r.status == "ok" and r.val is not None:
            lines.append(
                f"compress {report.candidate} {r.name}: val macro-F1 {r.val.macro_f1:.3f}, "
                f"{r.latency_ms.get('batch1', float('nan')):.2f} ms at batch 1, {r.seconds:.0f} s"
            )
        else:
            lines.append(f"compress {report.candidate} {r.name}: {r.status} {r.reason[:200]}")
    ok = sum(r.status == "ok" for r in report.variants)
    lines.append(
        f"compress {report.candidate}: {report.status} {report.reason[:300]}".rstrip()
        + f"; {ok}/{len(report.variants)} variants ok, best {report.best}, {report.wall_seconds:.0f} s"
    )
    return lines


def compress_candidate(
    candidate_folder: str | Path,
    features_path: str | Path,
    labels: dict[str, np.ndarray],
    folder: str | Path,
    config: CompressConfig | None = None,
    limits: SandboxLimits | None = None,
    fold: Fold | None = None,
    progress: Progress | None = None,
) -> CompressionReport:
    """Compress the trained candidate in ``candidate_folder`` into ``folder`` (wiped first) and
    write ``compression.json`` there. ``labels`` are the run's; with the candidate's
    cross-validation ``fold`` (its kept model's), fine-tuning trains on that fold's training rows
    and "val" is its held-out rows, which the model never saw. ``progress``, if given, gets the
    plan (:func:`plan_line`), each fine-tuning epoch as the sandbox reports it (the only messages
    it sends while it works) and the outcome per variant (:func:`report_lines`)."""
    config, limits = config or CompressConfig(), limits or SandboxLimits()
    source_dir, folder = Path(candidate_folder).resolve(), Path(folder).resolve()
    _check_trained(source_dir)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name in (PROGRAM_FILE, WEIGHTS_FILE):
        shutil.copyfile(source_dir / name, folder / name, follow_symlinks=False)
    sets = fold.index_sets if fold is not None else None
    if fold is not None and sets is not None:
        labels = fold.labels(labels)
        np.savez(folder / FOLD_FILE, train_index=sets[0], val_index=sets[1])
    np.save(folder / TRAIN_LABELS_FILE, np.asarray(labels["train"], dtype=np.int64))
    job = CompressJob(
        features_path=str(features_path),
        num_classes=len(LABELS),
        config=config,
        fold=sets is not None,
        audit_hook=limits.audit_hook,
    )
    (folder / JOB_FILE).write_text(job.model_dump_json())
    stoppers = VariantStoppers(np.asarray(labels["val"]), config, progress, f"compress {source_dir.name} ")
    limits = limits.model_copy(update={"threads": config.threads})
    say(progress, plan_line(source_dir.name, config, limits))
    run = run_sandboxed(WORKER_MODULE, folder, limits, on_message=stoppers, read_only=[Path(features_path)])
    report = _report(run, folder, source_dir.name, labels, config, limits)
    write_text_atomic(folder / COMPRESSION_REPORT_FILE, report.model_dump_json(indent=2))
    if progress is not None:
        for line in report_lines(report):
            progress(line)
    return report


def _check_trained(source_dir: Path) -> None:
    for name in (PROGRAM_FILE, WEIGHTS_FILE, METRICS_FILE):
        if not (source_dir / name).is_file():
            raise CompressionError(f"{source_dir} has no {name}: only trained candidates can be compressed")
    status = json.loads((source_dir / METRICS_FILE).read_text()).get("status")
    if status != Status.OK:
        raise CompressionError(f"{source_dir.name} did not train ok (status {status}); nothing to compress")


def _report(
    run: SandboxRun, folder: Path, candidate: str, labels, config: CompressConfig, limits: SandboxLimits
) -> CompressionReport:
    base = dict(
        candidate=candidate,
        folder=str(folder),
        isolation=run.isolation,
        wall_seconds=run.wall_s,
        stderr_tail=run.stderr_tail[-4000:],
    )
    worker = read_result(run, folder, limits, CompressWorkerResult)
    if isinstance(worker, tuple):
        return CompressionReport(**base, status=worker[0], reason=worker[1])
    rows = [_score(variant, folder, labels) for variant in worker.variants]
    if not rows or rows[0].name != REFERENCE or rows[0].status != "ok":
        return CompressionReport(**base, status="invalid_output", reason="the fp32 reference was not measured")
    _add_ratios(rows)
    return CompressionReport(
        **base, status="ok", variants=rows, best=best_variant(rows, config.max_f1_drop), environment=worker.environment
    )


def _score(variant: VariantOutput, folder: Path, labels) -> VariantMetrics:
    row = VariantMetrics(
        **variant.model_dump(include={"name", "technique", "status", "reason", "file", "finetune_epochs", "seconds"})
    )
    if variant.status != "ok":
        return row
    try:
        val_pred = parse_predictions(variant.val_pred, len(labels["val"]), "val")
        test_pred = parse_predictions(variant.test_pred, len(labels["test"]), "test")
        file = _inside(folder, variant.file)
        counts = _file_counts(file) or (variant.params_total, variant.params_nonzero)
        latency = {key: float(variant.latency_ms[key]) for key in ("batch1", "batch64")}
        if not all(np.isfinite(v) and v > 0 for v in latency.values()):
            raise ValueError("latency must be positive and finite")
    except (ValueError, OSError, KeyError) as exc:
        return row.model_copy(update={"status": "failed", "reason": f"invalid output: {exc}"})
    return row.model_copy(
        update={
            "val": classification_metrics(labels["val"], val_pred),
            "test": classification_metrics(labels["test"], test_pred),
            "params_total": counts[0],
            "params_nonzero": counts[1],
            "size_bytes": file.stat().st_size,
            "latency_ms": latency,
        }
    )


def _inside(folder: Path, relative: str) -> Path:
    path = folder / relative
    if path.is_symlink() or not path.is_file() or not path.resolve().is_relative_to(folder):
        raise ValueError(f"variant file {relative!r} is not a regular file inside the folder")
    return path


def _file_counts(path: Path) -> tuple[int, int] | None:
    """(total, non-zero) numbers in a safetensors or ONNX file, read without running anything."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        total = nonzero = 0
        with safe_open(str(path), framework="np") as handle:
            for key in handle.keys():
                values = handle.get_tensor(key)
                total, nonzero = total + values.size, nonzero + int(np.count_nonzero(values))
        return total, nonzero
    if path.suffix == ".onnx":
        from evoformer.compression.onnx_runtime import onnx_counts

        return onnx_counts(path)
    return None


def _add_ratios(rows: list[VariantMetrics]) -> None:
    reference = rows[0]
    for row in rows:
        if row.status != "ok":
            continue
        row.speedup_batch1 = round(reference.latency_ms["batch1"] / row.latency_ms["batch1"], 3)
        row.speedup_batch64 = round(reference.latency_ms["batch64"] / row.latency_ms["batch64"], 3)
        row.size_ratio = round(reference.size_bytes / row.size_bytes, 3)
        (ref_val, ref_test), (val, test) = reference.scores(), row.scores()
        row.val_f1_drop = round(ref_val.macro_f1 - val.macro_f1, 4)
        row.test_f1_drop = round(ref_test.macro_f1 - test.macro_f1, 4)


def best_variant(rows: list[VariantMetrics], max_f1_drop: float) -> str | None:
    """The fastest variant at batch 1 (then the smallest) whose val macro-F1 drop is within
    ``max_f1_drop``; chosen on val only, so the test columns stay an honest estimate."""
    eligible = [r for r in rows[1:] if r.status == "ok" and r.val_f1_drop is not None and r.val_f1_drop <= max_f1_drop]
    if not eligible:
        return None
    return min(eligible, key=lambda r: (r.latency_ms["batch1"], r.size_bytes)).name


def table_rows(report: CompressionReport) -> list[dict]:
    """The comparison table, one flat row per variant (CLI, artifact, benchmark)."""
    rows = []
    for r in report.variants:
        ok = r.status == "ok"
        val, test = r.scores() if ok else (None, None)
        rows.append(
            {
                "variant": r.name + (" *" if r.name == report.best else ""),
                "status": r.status,
                "val_f1": round(val.macro_f1, 4) if val else None,
                "test_f1": round(test.macro_f1, 4) if test else None,
                "test_acc": round(test.accuracy, 4) if test else None,
                "test_drop": r.test_f1_drop,
                "params": r.params_total if ok else None,
                "nonzero": r.params_nonzero if ok else None,
                "size_kb": round(r.size_bytes / 1024, 1) if ok else None,
                "size_x": r.size_ratio,
                "b1_ms": r.latency_ms.get("batch1"),
                "b64_ms": r.latency_ms.get("batch64"),
                "speedup_b1": r.speedup_batch1,
                "speedup_b64": r.speedup_batch64,
                "note": r.reason[:80]
                if not ok
                else (f"fine-tuned {r.finetune_epochs} ep" if r.finetune_epochs else ""),
            }
        )
    return rows


def variant_json(report: CompressionReport) -> list[dict]:
    """Per-variant fields of ``evoformer compress --json``."""
    return [
        {
            "name": r.name,
            "technique": r.technique,
            "status": r.status,
            "reason": r.reason,
            "val_macro_f1": r.val.macro_f1 if r.val else None,
            "test_macro_f1": r.test.macro_f1 if r.test else None,
            "test_accuracy": r.test.accuracy if r.test else None,
            "params_total": r.params_total,
            "params_nonzero": r.params_nonzero,
            "size_bytes": r.size_bytes,
            "latency_ms": r.latency_ms,
            "speedup_batch1": r.speedup_batch1,
            "speedup_batch64": r.speedup_batch64,
            "size_ratio": r.size_ratio,
            "test_f1_drop": r.test_f1_drop,
        }
        for r in report.variants
    ]
