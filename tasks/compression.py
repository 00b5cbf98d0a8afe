"""Prefect task ``compress_candidate`` (sandboxed, cached by what it depends on) and the table artifact."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from evoformer.candidates.job import PROGRAM_FILE, WEIGHTS_FILE, Status
from evoformer.compression.config import CompressConfig
from evoformer.compression.evaluate import CompressionReport, compress_candidate, table_rows
from evoformer.data.folds import Fold
from evoformer.sandbox.limits import SandboxLimits
from evoformer.sandbox.runner import SandboxError
from tasks.candidates import retry_only_on


class TransientCompressionFailure(RuntimeError):
    """The compression sandbox was killed (signal or memory); worth another try."""

    def __init__(self, report: CompressionReport) -> None:
        super().__init__(f"{report.candidate}: {report.status}: {report.reason}")
        self.report = report


def compression_key(_context: Any, parameters: dict[str, Any]) -> str:
    """Program and weights bytes, features, settings, limits and output folder (not the run id)."""
    digest = hashlib.sha256()
    for name in (PROGRAM_FILE, WEIGHTS_FILE):
        digest.update((Path(parameters["candidate_folder"]) / name).read_bytes())
    for part in (
        Path(parameters["features_path"]).name,
        parameters["config"].model_dump_json(),
        parameters["limits"].model_dump_json(),
        str(Path(parameters["folder"]).resolve()),
        parameters["fold"].digest() if parameters.get("fold") is not None else "",
    ):
        digest.update(part.encode())
    return "compress:" + digest.hexdigest()[:32]


@task(
    name="compress-candidate",
    task_run_name="compress-{candidate_folder}",
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=retry_only_on(TransientCompressionFailure, SandboxError),
    cache_key_fn=compression_key,
    persist_result=True,
)
def compress_candidate_task(
    candidate_folder: str,
    features_path: str,
    labels: dict[str, np.ndarray],
    folder: str,
    config: CompressConfig,
    limits: SandboxLimits,
    fold: Fold | None = None,
) -> CompressionReport:
    """Make and measure every variant of one trained candidate in the sandbox (on its ``fold``);
    logs the plan, the fine-tuning epochs as they arrive, each variant's outcome and the time."""
    report = compress_candidate(
        candidate_folder, features_path, labels, folder, config, limits, fold, progress=get_run_logger().info
    )
    if report.status in Status.TRANSIENT:
        raise TransientCompressionFailure(report)
    return report


@task(name="publish-compression", cache_policy=NO_CACHE)
def publish_compression(report: CompressionReport, baselines: dict[str, dict[str, float]]) -> None:
    """One table artifact per candidate: every variant with quality, size, latency and ratios,
    and the run's baselines (majority class) for scale."""
    key = "compress-" + "".join(c if c.isalnum() else "-" for c in report.candidate.lower())
    best = (
        f" Best within the val macro-F1 budget: {report.best}."
        if report.best
        else " No variant stayed within the val macro-F1 budget."
    )
    create_table_artifact(
        key=key,
        table=table_rows(report),
        description=(
            f"Compression of {report.candidate}: speed-ups and size ratios against the fp32 model measured in "
            f"the same run (size_x = fp32 bytes / variant bytes).{best} Status: {report.status} {report.reason}. "
            + " ".join(
                f"Baseline {name}: val {b['val']:.4f}, test {b['test']:.4f} macro-F1." for name, b in baselines.items()
            )
        ),
    )
