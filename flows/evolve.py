"""Flow ``evolve``: EvoPrompting over candidate programs.

Seeds are trained first. Each generation then proposes children (LLM calls as parallel tasks, or
offline AST edits), checks and de-duplicates them, trains them in parallel in the sandbox,
selects, and publishes artifacts. State is saved after every generation and every finished
training is reusable, so re-running with the same ``run_id`` resumes a killed run.

The domain logic lives in :mod:`evoformer.evolution` (``inputs``, ``children``,
``training_queue``, ``summary``); this module wires it to Prefect: tasks, artifacts, the task
runner that trains (through :class:`tasks.candidates.PrefectTrainer`) and the hand-over to
``compress``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, as_completed

from evoformer.baselines import macro_f1_table
from evoformer.candidates.smoke import SmokeCheck
from evoformer.config.evolve import EvolveParams
from evoformer.data.folds import run_folds, save_folds
from evoformer.evolution.children import add_generation, check_children, known_hashes, parent_views, train_seeds
from evoformer.evolution.fitness import FitnessEvaluator
from evoformer.evolution.inputs import EvolutionError, EvolutionInputs, load_seeds, read_prelude, settings_hash
from evoformer.evolution.operators import Proposal, plan_children, resolve_operator, stop_if_unreachable
from evoformer.evolution.population import Individual, parent_pool
from evoformer.evolution.retrain import RunSettings, save_run_settings
from evoformer.evolution.state import EvolutionState, load_proposals, load_state, save_proposals, save_state
from evoformer.evolution.summary import evolution_summary, fitness_summary
from evoformer.evolution.training_queue import TrainingQueue, TrainingSetup
from evoformer.layout import RunLayout
from evoformer.llm import LLMClient, UsageLedger, open_client
from evoformer.runs import update_summary
from flows.compress import trigger_compression
from flows.data import prepare_data
from flows.runners import make_task_runner
from flows.train import split_labels
from tasks.candidates import PrefectTrainer
from tasks.evolution import propose_child, publish_generation, report_progress, start_progress
from tasks.report import write_report_task

# Re-exported: callers of the flow module catch and use these.
__all__ = [
    "EvolutionError",
    "EvolveParams",
    "check_children",
    "evolve",
    "load_seeds",
    "read_prelude",
    "settings_hash",
    "with_stable_run_id",
]


class _Publisher:
    """Saves and publishes each completed generation: state and lineage, artifacts, progress."""

    def __init__(self, state: EvolutionState, layout: RunLayout, majority_f1: float | None, total: int) -> None:
        self.state, self.layout, self.majority_f1, self.total = state, layout, majority_f1, total
        self.published = -1
        self.progress = start_progress(total)
        report_progress(self.progress, max(state.completed_generation, 0), total)

    def generation(self, generation: int) -> None:
        self.published = self.state.completed_generation = generation
        save_state(self.layout, self.state)
        publish_generation(self.state.individuals, generation, str(self.layout.root), self.majority_f1)
        report_progress(self.progress, generation, self.total)

    def final(self) -> None:
        """A run killed between saving and publishing, then resumed with nothing left to do,
        still leaves its final artifacts."""
        if self.published != self.state.completed_generation:
            publish_generation(
                self.state.individuals, self.state.completed_generation, str(self.layout.root), self.majority_f1
            )


def _parents(
    state: EvolutionState, params: EvolveParams, generation: int, logger: logging.LoggerAdapter
) -> list[Individual]:
    pool, note = parent_pool(state.individuals, params.selection)
    if note:
        logger.warning("generation %d: %s", generation, note)
    if not pool:
        raise EvolutionError("no trained candidate is left to be a parent")
    return pool


@dataclass
class _Proposer:
    """Writes a generation's children with parallel ``propose_child`` tasks (LLM calls, or offline AST edits)."""

    params: EvolveParams
    kind: Literal["llm", "offline"]
    prelude: str
    client: LLMClient | None
    ledger: UsageLedger | None
    layout: RunLayout
    logger: logging.LoggerAdapter
    features_path: str

    def children(self, state: EvolutionState, pool: list[Individual], generation: int) -> list[Proposal] | None:
        """Those saved before an interruption, else newly proposed and saved before they train.
        None when the LLM budget left none."""
        proposals = load_proposals(self.layout, generation)
        if proposals is not None:
            self.logger.info(
                "generation %d: reusing the %d children proposed before the interruption", generation, len(proposals)
            )
            return proposals
        written = self.propose(state, pool, generation)
        stop_if_unreachable(generation, written, self.params.children)
        proposals = [p for p in written if p.status != "budget_exhausted"]
        if not proposals:
            return None
        save_proposals(self.layout, generation, proposals)
        return proposals

    def propose(self, state: EvolutionState, pool: list[Individual], generation: int) -> list[Proposal]:
        params = self.params
        pending = plan_children(pool, generation, params.children, params.selection, params.seed)
        # As many requests in flight as the server serves at once (llama.cpp reports its slots):
        # more would wait in its queue, and a client timeout spent there abandons a paid request.
        # Each child is checked against the children that came back before it was sent.
        at_once = self.client.concurrency() if self.client else len(pending)
        running: list[PrefectFuture] = []
        proposals = []
        while pending or running:
            while pending and len(running) < at_once:
                plan = pending.pop(0)
                running.append(
                    propose_child.submit(
                        plan,
                        parent_views(state, plan, self.layout, params.operator.feedback_failures),
                        self.kind,
                        params.operator,
                        params.static.allowed_imports,
                        self.prelude,
                        self.client,
                        self.check(plan.child_id),
                        [p.source for p in proposals if p.source is not None],
                    )
                )
            future = next(as_completed(running))
            running.remove(future)
            proposals.append(future.result())
            if proposals[-1].status == "llm_unreachable":
                pending.clear()  # the server is gone: the rest would only fail after their retries
            if self.ledger:  # each paid reply is on the books before the next one lands
                self.ledger.save(self.layout.llm_usage)
        return sorted(proposals, key=lambda p: p.plan.index)

    def check(self, child_id: str) -> SmokeCheck | None:
        """The LLM child's test of each draft: static check, then build, forward and backward in the sandbox."""
        if self.kind != "llm":
            return None
        limits = self.params.limits
        return SmokeCheck(self.prelude, self.params.static, self.features_path, limits, self.layout.smoke(child_id))


def _llm_client(
    kind: Literal["llm", "offline"], params: EvolveParams, layout: RunLayout
) -> tuple[LLMClient | None, UsageLedger | None]:
    if kind != "llm":
        return None, None
    from flows.secret_key import with_secret_key

    return open_client(with_secret_key(params.operator.llm), layout.llm_dir)


def with_stable_run_id(params: EvolveParams) -> EvolveParams:
    """Without a run id, name the folder after this flow run, so a retry from the UI resumes it."""
    if params.data.storage.run_id:
        return params
    from prefect.runtime import flow_run

    params = params.model_copy(deep=True)
    started = flow_run.scheduled_start_time
    params.data.storage.run_id = f"{started:%Y%m%d-%H%M%S}-{str(flow_run.id)[:6]}" if flow_run.id else None
    return params


@flow(name="evolve", log_prints=True)
def evolve(params: EvolveParams = EvolveParams()) -> dict[str, Any]:
    """Seeds, then ``generations`` rounds of propose, check, train, select and publish."""
    logger = get_run_logger()
    params = with_stable_run_id(params)
    kind, reason = resolve_operator(params.operator)
    logger.info("operator: %s", reason)
    inputs = EvolutionInputs.load(params.seed_folder, params.prelude_path, params.static)  # checked before any work
    data = prepare_data(params.data)
    layout, baselines = RunLayout(data["run_dir"]), macro_f1_table(data["baselines"])
    logger.info(
        "run id %s (folder %s): `evoformer compress --run %s` compresses its candidates",
        data["run_id"],
        layout.root,
        data["run_id"],
    )
    state = load_state(layout, settings_hash(params, inputs.seeds, inputs.prelude, data["features_path"]), kind)
    if state.completed_generation >= 0:
        logger.info("resuming %s after generation %d", data["run_id"], state.completed_generation)
    client, ledger = _llm_client(kind, params, layout)
    proposer = _Proposer(params, kind, inputs.prelude, client, ledger, layout, logger, data["features_path"])
    setup = TrainingSetup(layout, data["features_path"], split_labels(layout), params.train, params.limits)
    folds = run_folds(layout, params.evaluation.folds, params.evaluation.seed)
    save_folds(layout.folds_file, folds)
    save_run_settings(  # what the retrain flow trains this run's candidates with
        layout,
        RunSettings(
            train=params.train,
            limits=params.limits,
            evaluation=params.evaluation,
            prelude=inputs.prelude,
            noise_se=params.selection.noise_se,
        ),
    )
    publish = _Publisher(state, layout, baselines.get("majority", {}).get("val"), params.generations)
    at_once = params.trainings_at_once()
    logger.info(
        "fitness: %s; %d trainings at once (%d thread(s) each)",
        f"{len(folds)}-fold cross-validation over train + val" if len(folds) > 1 else "the val split",
        at_once,
        params.limits.threads,
    )

    with make_task_runner(params.runner, at_once) as runner:  # started once: a Dask cluster is not cheap
        queue = TrainingQueue(setup, PrefectTrainer(runner), at_once, logger)
        evaluator = FitnessEvaluator(queue, folds, params.evaluation)
        if state.completed_generation < 0:
            state.individuals += train_seeds(inputs, params.static, evaluator)
            publish.generation(0)
        state.stopped = ""  # a resumed run may have a larger budget: the ledger decides below
        search_started = time.monotonic()
        for generation in range(state.completed_generation + 1, params.generations + 1):
            if ledger and ledger.budget_reached():
                state.stopped = f"LLM budget reached after generation {generation - 1}"
                break
            if params.search_budget_s and time.monotonic() - search_started > params.search_budget_s:
                state.stopped = (
                    f"search budget of {params.search_budget_s:g} s reached after generation {generation - 1}"
                )
                break
            pool = _parents(state, params, generation, logger)
            proposals = proposer.children(state, pool, generation)
            if proposals is None:
                state.stopped = f"LLM budget reached before generation {generation}"
                break
            recorded, jobs = check_children(
                proposals, known_hashes(state.individuals), inputs.prelude, params.static, layout
            )
            trained = evaluator.evaluate(jobs, state.individuals)
            add_generation(state, proposals, recorded, trained)
            logger.info(
                "generation %d: %d proposed, %d not trained, %d stopped by the cascade, %d fully evaluated",
                generation,
                len(proposals),
                len(recorded),
                sum(i.stage == "screened" for i in trained),
                sum(i.trained for i in trained),
            )
            publish.generation(generation)

    if state.stopped:
        logger.warning("not proposing more children: %s", state.stopped)
        save_state(layout, state)
    publish.final()

    from prefect.runtime import flow_run

    summary = evolution_summary(
        state,
        ledger,
        reason,
        layout,
        run_id=data["run_id"],
        flow_run_id=flow_run.id,
        baselines=baselines,
        fitness=fitness_summary(
            state.individuals, len(folds), params.selection.noise_se, params.evaluation.cascade.enabled
        ),
        noise_se=params.selection.noise_se,
    )
    update_summary(layout, {"evolve": summary.section()})
    logger.info("run %s done: %s", data["run_id"], layout.root)
    summary.report = write_report_task(str(layout.root))
    if params.compress.mode != "off":
        front = [member.id for member in summary.front]
        logger.info("handing the final front to compress (%s): %s", params.compress.mode, ", ".join(front))
        summary.compress = trigger_compression(params.compress, params.data.storage, data["run_id"], front)
    return summary.as_dict()
