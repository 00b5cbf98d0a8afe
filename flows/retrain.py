"""Flow ``retrain``: train chosen candidates of a run again, in place, with optional larger limits.

The candidates are evaluated as evolve evaluated them (the run's folds from
``evolution/folds.npz``, its cascade screening them but never stopping one), with the run's
training config and sandbox limits as evolve recorded them, overridden where asked. Every
training runs again (nothing is reused). The state, lineage, leaderboard artifact, summary and
report then show the new records; the domain logic is :mod:`evoformer.evolution.retrain`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from evoformer.baselines import macro_f1_table
from evoformer.config.retrain import RetrainParams  # noqa: F401  (declared in evoformer/config)
from evoformer.config.runners import RunnerConfig
from evoformer.data.folds import load_folds, own_split
from evoformer.evolution.fitness import FitnessEvaluator
from evoformer.evolution.retrain import (
    RetrainError,
    apply_retrained,
    choose,
    load_run_settings,
    load_saved_state,
    overridden,
    overrides_note,
    refreshed_summary,
    retrain_jobs,
)
from evoformer.evolution.training_queue import TrainingQueue, TrainingSetup
from evoformer.layout import RunLayout
from evoformer.runs import read_summary, update_summary
from flows.compress import run_folder
from flows.runners import make_task_runner
from flows.train import split_labels
from tasks.candidates import PrefectTrainer
from tasks.evolution import publish_generation
from tasks.report import write_report_task


@flow(name="retrain", log_prints=True)
def retrain(params: RetrainParams) -> dict[str, Any]:
    """Retrain the chosen candidates; a later evolve of the same run (same parameters, more
    generations) resumes from the updated population."""
    logger = get_run_logger()
    layout = RunLayout(run_folder(params.storage, params.run_id))
    settings, state = load_run_settings(layout), load_saved_state(layout)
    chosen = choose(state.individuals, params.candidates, params.failed)
    run_summary = read_summary(layout)
    features_path = run_summary.get("features_path")
    if not features_path or not Path(features_path).is_dir():
        raise RetrainError(
            f"the features of run {layout.run_id} are gone ({features_path}); run `evoformer data` again"
        )
    train, limits = overridden(settings.train, params.train), overridden(settings.limits, params.limits)
    folds = load_folds(layout.folds_file) or [own_split()]  # no file: the run used its own val split
    note = overrides_note(params.limits, params.train)
    logger.info("%s: %s %s", layout.run_id, note, ", ".join(i.id for i in chosen) or "nothing (no candidate failed)")

    retrained = []
    if chosen:
        jobs = retrain_jobs(layout, chosen, settings.prelude)
        setup = TrainingSetup(layout, features_path, split_labels(layout), train, limits)
        ids = {i.id for i in chosen}
        with make_task_runner(RunnerConfig(), params.max_parallel) as runner:
            queue = TrainingQueue(setup, PrefectTrainer(runner), params.max_parallel, logger)
            evaluator = FitnessEvaluator(queue, folds, settings.evaluation, refresh=True)
            others = [i for i in state.individuals if i.id not in ids]
            retrained = evaluator.evaluate(jobs, others, always_promote=True)
        retrained = apply_retrained(layout, state, retrained, note)
        for individual in retrained:
            logger.info("%s: now %s %s", individual.id, individual.status, individual.reason[:300])

    baselines = macro_f1_table(run_summary.get("baselines", {}))
    publish_generation(
        state.individuals, state.completed_generation, str(layout.root), baselines.get("majority", {}).get("val")
    )
    summary = refreshed_summary(layout, state, settings, len(folds))
    section = {
        "candidates": [
            {"id": i.id, "status": i.status, "reason": i.reason, "val_macro_f1": i.val_macro_f1} for i in retrained
        ],
        "limits": params.limits,
        "train": params.train,
    }
    update_summary(layout, {"evolve": summary.section(), "retrain": section})
    report = write_report_task(str(layout.root))
    return {"run_id": layout.run_id, "run_dir": str(layout.root.resolve()), **section, "report": report}
