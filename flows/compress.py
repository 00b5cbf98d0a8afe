"""Flow ``compress``: prune and quantize chosen candidates of a run; measure every variant.

Candidates are compressed one after another, never in parallel, so that latencies are measured on
a quiet machine with fixed threads."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from evoformer.baselines import macro_f1_table
from evoformer.compression.evaluate import CompressionError, CompressionReport, table_rows, variant_json
from evoformer.compression.select import select_candidates
from evoformer.config.compress import CompressParams, CompressTrigger  # noqa: F401  (declared in evoformer/config)
from evoformer.data.folds import load_folds
from evoformer.layout import RunLayout, run_layouts
from evoformer.runs import StorageConfig, read_summary, update_summary
from evoformer.summaries import CompressedCandidate, CompressSummary
from flows.train import split_labels
from tasks.compression import TransientCompressionFailure, compress_candidate_task, publish_compression
from tasks.report import write_report_task

FLOW_RUN_PREFIX = "flow-run:"


def run_folder(storage: StorageConfig, run_id: str) -> Path:
    """The existing folder of ``run_id``, or of the evolve flow run ``flow-run:<uuid>`` (what an
    automation knows); a clear error if there is none."""
    runs = Path(storage.runs_dir)
    if run_id.startswith(FLOW_RUN_PREFIX):
        wanted = run_id[len(FLOW_RUN_PREFIX) :]
        for layout in run_layouts(runs):
            with contextlib.suppress(OSError, ValueError):
                if json.loads(layout.summary.read_text()).get("evolve", {}).get("flow_run_id") == wanted:
                    return layout.root
        raise CompressionError(f"no run under {runs.resolve()} was made by evolve flow run {wanted}")
    layout = RunLayout.under(runs, run_id)
    if not layout.summary.is_file():
        raise CompressionError(f"no run {run_id!r} under {runs.resolve()} (no {RunLayout.SUMMARY})")
    return layout.root


def report_summary(report: CompressionReport) -> CompressedCandidate:
    """What the summary shows of one compressed candidate."""
    return CompressedCandidate(
        candidate=report.candidate,
        status=report.status,
        reason=report.reason,
        folder=report.folder,
        best=report.best,
        environment=report.environment,
        variants=variant_json(report),
        table=table_rows(report),
    )


@flow(name="compress", log_prints=True)
def compress(params: CompressParams) -> dict[str, Any]:
    """Compress the chosen candidates; results under ``runs/<run-id>/compression/<candidate>/``."""
    logger = get_run_logger()
    layout = RunLayout(run_folder(params.storage, params.run_id))
    run_summary = read_summary(layout)
    features_path = run_summary.get("features_path")
    baselines = macro_f1_table(run_summary.get("baselines", {}))
    if not features_path or not Path(features_path).is_dir():
        raise CompressionError(
            f"the features of run {params.run_id} are gone ({features_path}); run `evoformer data` again"
        )
    labels = split_labels(layout)
    folds = load_folds(layout.folds_file)  # cross-validated: each kept model is its fold 0's
    chosen = select_candidates(layout, params.candidates, params.top_k)
    logger.info("compressing %s", ", ".join(f"{c.id} (val {c.val_macro_f1:.4f}, {c.params} params)" for c in chosen))
    reports = []
    for candidate in chosen:
        state = compress_candidate_task(
            candidate.folder,
            features_path,
            labels,
            str(layout.compression(candidate.id).resolve()),
            params.config,
            params.limits,
            folds[0] if folds else None,
            return_state=True,
        )
        try:
            report = state.result()
        except TransientCompressionFailure as exc:
            report = exc.report
        publish_compression(report, baselines)
        logger.info("%s: %s %s; best %s", candidate.id, report.status, report.reason, report.best)
        reports.append(report_summary(report))
    summary = CompressSummary(
        run_id=layout.run_id, run_dir=str(layout.root.resolve()), candidates=reports, baselines=baselines
    )
    update_summary(layout, {"compress": summary.section()})
    summary.report = write_report_task(str(layout.root))
    return summary.as_dict()


def trigger_compression(
    trigger: CompressTrigger, storage: StorageConfig, run_id: str, candidates: list[str]
) -> dict[str, Any]:
    """Start ``compress`` on ``candidates`` of a finished run, as a subflow or through a deployment."""
    params = CompressParams(run_id=run_id, candidates=candidates, config=trigger.config, storage=storage)
    if trigger.mode == "subflow":
        return compress(params)
    from prefect.deployments import run_deployment

    flow_run = run_deployment(trigger.deployment, parameters={"params": params.model_dump(mode="json")}, timeout=0)
    return {"deployment": trigger.deployment, "flow_run_id": str(flow_run.id), "candidates": candidates}
