"""Prefect tasks of the evolve flow: propose a child (LLM calls run as parallel tasks) and publish
the generation's artifacts. Training reuses ``tasks.candidates.train_candidate``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

from evoformer.evolution.operators import Check, ChildPlan, OperatorConfig, Proposal, propose
from evoformer.evolution.population import Individual, best
from evoformer.evolution.prompt import ParentView
from evoformer.evolution.report import best_program_markdown, leaderboard_rows, plot_pareto
from evoformer.layout import RunLayout
from evoformer.llm import LLMClient
from evoformer.run_files import plot_markdown


@task(name="propose-child", task_run_name="propose-{plan.child_id}", cache_policy=NO_CACHE)
def propose_child(
    plan: ChildPlan,
    parents: list[ParentView],
    kind: Literal["llm", "offline"],
    config: OperatorConfig,
    allowed_imports: list[str],
    prelude: str,
    client: LLMClient | None,
    check: Check | None = None,
    siblings: list[str] | None = None,
) -> Proposal:
    """Write one child (not cached here: LLM replies are cached on disk by the client); ``check``
    is the LLM's repair loop's test of each program (the static check and the sandboxed smoke run),
    ``siblings`` the programs of this generation's children written before it (copies get a repair round)."""
    logger = get_run_logger()
    started = time.perf_counter()
    proposal = propose(
        plan, parents, kind, config, allowed_imports, prelude, client, check, logger.info, siblings or []
    )
    seconds = round(time.perf_counter() - started, 3)
    outcome = proposal.status + (f": {proposal.reason[:200]}" if proposal.reason else "")
    logger.info("%s: %s in %.1f s (%d repair round(s))", plan.child_id, outcome, seconds, proposal.repairs)
    return proposal.model_copy(update={"seconds": seconds})


def start_progress(total_generations: int) -> UUID:
    return create_progress_artifact(0.0, key="evolve-progress", description=f"Generations done of {total_generations}.")


def report_progress(artifact_id: UUID, done: int, total: int) -> None:
    update_progress_artifact(
        artifact_id, 100.0 * done / max(total, 1), description=f"{done} of {total} generations done."
    )


@task(name="publish-generation", cache_policy=NO_CACHE)
def publish_generation(individuals: list[Individual], generation: int, run_dir: str, majority_f1: float | None) -> str:
    """Leaderboard table, best program as markdown, Pareto plot (PNG in the run folder, linked)."""
    create_table_artifact(
        key="evolve-leaderboard",
        table=leaderboard_rows(individuals, Path(run_dir).name),
        description=f"Every candidate after generation {generation}: status and reason, cascade stage, "
        "fitness (mean val macro-F1 over folds ± SE; stage 1: the score of a child the cascade stopped), "
        "per-fold scores, params, the kept model's test macro-F1 (measured, never used to choose), lineage, "
        "and each trained candidate's compress parameters (paste them into Custom run → JSON).",
    )
    layout = RunLayout(run_dir)
    top = best(individuals)
    if top is not None:
        # The copy the orchestrator wrote, never the one in the folder the sandbox could write to.
        source = layout.read_program(top.id) or "(program file missing)"
        create_markdown_artifact(
            key="evolve-best-program",
            markdown=best_program_markdown(top, source),
            description=f"Best candidate by fitness (mean val macro-F1 over folds) after generation {generation}.",
        )
    plot = plot_pareto(individuals, layout.pareto_plot, majority_f1)
    create_markdown_artifact(
        key="evolve-pareto",
        markdown=plot_markdown(plot, "Pareto front (PNG)"),
        description=f"Fitness (mean val macro-F1 over folds, ± SE) against params after generation {generation}.",
    )
    return str(plot)
