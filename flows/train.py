"""Flow ``train_program``: prepare data (cached), then train one program in the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger

from evoformer.baselines import label_ids, macro_f1_table
from evoformer.candidates.evaluate import CandidateResult
from evoformer.candidates.program import CandidateProgram
from evoformer.config.train import TrainProgramParams  # noqa: F401  (declared in evoformer/config)
from evoformer.layout import SPLITS, RunLayout
from evoformer.runs import update_summary
from flows.data import prepare_data
from tasks.candidates import candidate_training, result_of


def split_labels(run_dir: Path | RunLayout) -> dict[str, Any]:
    """Label ids of the run's splits, read from its split tables (orchestrator side only)."""
    layout = RunLayout.of(run_dir)
    return {name: label_ids(pd.read_parquet(layout.split_table(name))["label"]) for name in SPLITS}


def candidate_summary(result: CandidateResult) -> dict[str, Any]:
    """The JSON shape of one trained candidate."""
    out: dict[str, Any] = {
        "name": result.name,
        "status": result.status,
        "reason": result.reason,
        "program_hash": result.program_hash,
        "folder": result.folder,
        "isolation": result.isolation,
        "metrics": None,
    }
    if result.metrics:
        m = result.metrics
        out["metrics"] = {
            "params": m.params,
            "val": m.val.model_dump(),
            "test": m.test.model_dump(),
            "latency_ms": m.latency_ms,
            "train_seconds": m.train_seconds,
            "epochs": m.epochs,
            "best_epoch": m.best_epoch,
        }
    if result.status != "ok":
        out["stderr_tail"] = result.stderr_tail[-2000:]
    return out


@flow(name="train_program")
def train_program(params: TrainProgramParams) -> dict[str, Any]:
    """Train one program and report its metrics next to the baselines of the same splits."""
    logger = get_run_logger()
    data = prepare_data(params.data)
    layout = RunLayout(data["run_dir"])
    program = CandidateProgram.from_file(params.program_path, params.prelude_path)
    folder = layout.candidate(f"{program.name}-{program.program_hash()[:8]}")
    state = candidate_training(
        program,
        data["features_path"],
        split_labels(layout),
        str(folder),
        params.train,
        params.limits,
        return_state=True,
    )
    result = result_of(state)
    logger.info("%s: %s %s", program.name, result.status, result.reason)
    summary = candidate_summary(result) | {
        "run_id": data["run_id"],
        "run_dir": data["run_dir"],
        "baselines": macro_f1_table(data["baselines"]),
    }
    update_summary(layout, {"train": summary})
    return summary
