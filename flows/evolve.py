"""Flow ``evolve``: EvoPrompting over candidate programs.

Seeds are trained first. Each generation then proposes children (LLM calls as parallel tasks, or
offline AST edits), checks and de-duplicates them, trains them in parallel in the sandbox,
selects, and publishes artifacts. State is saved after every generation and every finished
training is reusable, so re-running with the same ``run_id`` resumes a killed run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.futures import as_completed
from pydantic import BaseModel, Field

from evoformer.baselines import macro_f1_table
from evoformer.candidates.evaluate import CandidateResult, training_key
from evoformer.candidates.job import METRICS_FILE, Status, TrainConfig
from evoformer.candidates.program import CandidateProgram
from evoformer.candidates.static_check import StaticCheckConfig, check_source
from evoformer.evolution.operators import (
    ChildPlan, OperatorConfig, Proposal, parent_view, plan_children, recent_failures, resolve_operator,
)
from evoformer.evolution.population import (
    Individual, SelectionConfig, best, dominates, pareto_front, parent_pool, retire,
)
from evoformer.evolution.state import (
    EvolutionState, finished_training, load_proposals, load_state, mark_trained, save_proposals, save_state,
)
from evoformer.layout import RunLayout
from evoformer.llm import LLMClient, UsageLedger, UsageSnapshot, open_client
from evoformer.runs import update_summary
from evoformer.sandbox.limits import SandboxLimits
from evoformer.seeds import seed_files
from flows.compress import CompressTrigger, trigger_compression
from flows.data import PrepareDataParams, prepare_data
from flows.runners import RunnerConfig, make_task_runner
from flows.train import result_of, split_labels
from tasks.candidates import train_candidate
from tasks.evolution import propose_child, publish_generation, report_progress, start_progress
from tasks.report import write_report_task

class EvolveParams(BaseModel):
    """Everything ``evolve`` needs; rendered as a form in the Prefect UI."""

    generations: int = Field(default=3, ge=0, description="Generations after the seeds.")
    children: int = Field(default=6, ge=1, description="Children proposed per generation.")
    seed: int = Field(default=0, description="Seeds parent draws and operator choices (training has train.seed).")
    operator: OperatorConfig = Field(default_factory=OperatorConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    seed_folder: str | None = Field(default=None, description="Folder of seed programs (*.py); empty: the built-in library.")
    prelude_path: str | None = Field(default=None, description="Static helper code prepended to every program.")
    data: PrepareDataParams = Field(default_factory=PrepareDataParams)
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(time_budget_s=120.0),
                               description="Per-candidate training (default budget 120 s).")
    limits: SandboxLimits = Field(default_factory=SandboxLimits)
    static: StaticCheckConfig = Field(default_factory=StaticCheckConfig)
    max_parallel: int = Field(default=1, ge=1, description="Trainings at once (each uses limits.threads cores).")
    runner: RunnerConfig = Field(default_factory=RunnerConfig, description="Task runner of candidate training (thread, process, dask, ray).")
    compress: CompressTrigger = Field(default_factory=CompressTrigger,
                                      description="Compress the final Pareto front when the run ends (off by default).")


class EvolutionError(RuntimeError):
    """The run cannot go on (no seed trained, no parent left)."""


def settings_hash(params: EvolveParams, seeds: list[CandidateProgram], prelude: str, features_path: str) -> str:
    """What shapes the population. Generations, budgets and parallelism are left out, so a run
    can be resumed with more generations or another LLM budget."""
    op = params.operator
    payload = {
        "children": params.children, "seed": params.seed, "selection": params.selection.model_dump(),
        "operator": [op.temperatures, op.feedback_failures, op.max_edits, op.llm.model],
        "train": params.train.model_dump(), "limits": params.limits.model_dump(), "static": params.static.model_dump(),
        "seeds": [(s.name, s.program_hash()) for s in seeds], "prelude": prelude, "features": Path(features_path).name,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def load_seeds(folder: str | None) -> list[CandidateProgram]:
    """The seed programs, with a clear error for an unreadable file."""
    programs = []
    try:
        paths = seed_files(folder)
    except FileNotFoundError as exc:
        raise EvolutionError(str(exc)) from exc
    for path in paths:
        try:
            programs.append(CandidateProgram(name=f"seed-{path.stem}", source=path.read_text()))
        except (UnicodeDecodeError, OSError) as exc:
            raise EvolutionError(f"cannot read seed {path}: {exc}") from exc
    return programs


def read_prelude(path: str | None) -> str:
    """The prelude's text ('' without one), with a clear error for a missing or unreadable file."""
    if not path:
        return ""
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvolutionError(f"cannot read prelude {path}: {exc}") from exc


class _Job(BaseModel):
    individual: Individual
    program: CandidateProgram


def _record(individual: Individual, result: CandidateResult, wall_seconds: float | None = None) -> Individual:
    update: dict[str, Any] = {"status": result.status, "reason": result.reason, "folder": result.folder, "wall_seconds": wall_seconds}
    if result.metrics:
        m = result.metrics
        update |= {"params": m.params, "train_seconds": m.train_seconds, "val_macro_f1": m.val.macro_f1, "test_macro_f1": m.test.macro_f1,
                   "val_accuracy": m.val.accuracy, "test_accuracy": m.test.accuracy}
    return individual.model_copy(update=update)


def train_all(jobs: list[_Job], ctx: dict[str, Any], max_parallel: int) -> list[Individual]:
    """Train every job on the run's task runner (``ctx["runner"]``, started), at most ``max_parallel``
    at once; finished trainings of a killed run are reused."""
    logger = get_run_logger()
    done: dict[str, Individual] = {}
    pending: list[tuple[_Job, Path, str, bool]] = []
    for job in jobs:
        folder = RunLayout(ctx["run_dir"]).candidate(job.individual.id)
        key = training_key(job.program, ctx["features_path"], ctx["train"], ctx["limits"])
        previous = finished_training(folder, key)
        if previous is not None:
            logger.info("%s: reusing the finished training in %s", job.individual.id, folder)
            done[job.individual.id] = _record(job.individual, previous)
        else:
            pending.append((job, folder, key, False))
    running: dict[Any, tuple[_Job, Path, str, float]] = {}
    while pending or running:
        while pending and len(running) < max_parallel:
            job, folder, key, refresh = pending.pop(0)
            task = train_candidate.with_options(refresh_cache=True) if refresh else train_candidate
            parameters = {"program": job.program, "features_path": ctx["features_path"], "labels": ctx["labels"],
                          "folder": str(folder), "train": ctx["train"], "limits": ctx["limits"]}
            running[ctx["runner"].submit(task, parameters)] = (job, folder, key, time.perf_counter())
        future = next(as_completed(list(running)))
        job, folder, key, started = running.pop(future)
        future.wait()  # sets the final state from the finished worker, not a stale API read
        try:
            result = result_of(future.state)
        except Exception as exc:  # noqa: BLE001 - an infrastructure failure after retries
            done[job.individual.id] = job.individual.model_copy(update={"status": Status.SANDBOX_ERROR, "reason": str(exc)[:500]})
            continue
        result = _into_run_folder(result, folder, key)
        if result is None:  # a cached result whose files are gone or were replaced: train again
            logger.info("%s: the cached training's folder is gone; training again", job.individual.id)
            pending.append((job, folder, key, True))
            continue
        if not result.transient:
            mark_trained(folder, key)
        done[job.individual.id] = _record(job.individual, result, round(time.perf_counter() - started, 3))
        logger.info("%s: %s %s", job.individual.id, result.status, result.reason)
    return [done[job.individual.id] for job in jobs]


def _into_run_folder(result: CandidateResult, folder: Path, key: str) -> CandidateResult | None:
    """A result from Prefect's cache may have been trained in another run's folder: copy its files
    here, so every run folder holds its own programs, weights and metrics. ``None`` when that
    folder no longer holds this very training."""
    if not result.folder or Path(result.folder).resolve() == folder.resolve():
        return result
    source = Path(result.folder)
    if finished_training(source, key) is None:
        return None
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(source, folder, symlinks=True)
    moved = result.model_copy(update={"folder": str(folder.resolve())})
    (folder / METRICS_FILE).unlink(missing_ok=True)
    (folder / METRICS_FILE).write_text(moved.model_dump_json(indent=2))
    return moved


def _write_program(run_dir: Path, individual_id: str, source: str) -> None:
    RunLayout(run_dir).write_program(individual_id, source)


def _program_source(run_dir: Path, individual_id: str) -> str:
    return RunLayout(run_dir).program(individual_id).read_text()


def check_children(
    proposals: list[Proposal], known_hashes: dict[str, str], prelude: str, static: StaticCheckConfig, run_dir: Path
) -> tuple[list[Individual], list[_Job]]:
    """Static checks and de-duplication by normalised AST hash; only new, clean children train."""
    recorded, jobs = [], []
    for proposal in proposals:
        plan = proposal.plan
        individual = Individual(
            id=plan.child_id, generation=plan.generation, parents=plan.parents, operator=proposal.operator,
            temperature=proposal.temperature, prompt_hash=proposal.prompt_hash, description=proposal.description,
            status=Status.PROPOSAL_FAILED, reason=proposal.reason,
        )
        if proposal.source is None:
            recorded.append(individual)
            continue
        _write_program(run_dir, plan.child_id, proposal.source)
        program = CandidateProgram(name=plan.child_id, source=proposal.source, prelude=prelude)
        try:
            individual.program_hash = program.program_hash()
            report = check_source(program.full_source(), static)
        except (RecursionError, MemoryError, ValueError) as exc:  # pathological sources, e.g. deeply nested
            recorded.append(individual.model_copy(update={"status": Status.REJECTED, "reason": f"cannot analyse the program: {type(exc).__name__}"}))
            continue
        if not report.ok:
            recorded.append(individual.model_copy(update={"status": Status.REJECTED, "reason": "; ".join(report.reasons)}))
        elif individual.program_hash in known_hashes:
            same = known_hashes[individual.program_hash]
            recorded.append(individual.model_copy(update={"status": Status.DUPLICATE, "reason": f"same normalised AST as {same}"}))
        else:
            known_hashes[individual.program_hash] = plan.child_id
            jobs.append(_Job(individual=individual.model_copy(update={"status": Status.PENDING, "reason": ""}), program=program))
    return recorded, jobs


def _propose_generation(
    state: EvolutionState, pool: list[Individual], generation: int, params: EvolveParams, kind: Literal["llm", "offline"],
    prelude: str, client: LLMClient | None, ledger: UsageLedger | None, run_dir: Path,
) -> list[Proposal]:
    """Plan the children, then write them with parallel ``propose_child`` tasks."""
    by_id = {i.id: i for i in state.individuals}
    plans = plan_children(pool, generation, params.children, params.selection, params.seed)
    futures = [
        propose_child.submit(
            plan,
            [parent_view(by_id[p], _program_source(run_dir, p), recent_failures(state.individuals, p, params.operator.feedback_failures))
             for p in plan.parents],
            kind, params.operator, params.static.allowed_imports, prelude, client,
        )
        for plan in plans
    ]
    proposals = []
    for future in as_completed(futures):
        proposals.append(future.result())
        if ledger:  # each paid reply is on the books before the next one lands
            ledger.save(RunLayout(run_dir).llm_usage)
    return sorted(proposals, key=lambda p: p.plan.index)


def _brief(individual: Individual | None) -> dict[str, Any] | None:
    if individual is None:
        return None
    return {"id": individual.id, "params": individual.params, "val_macro_f1": individual.val_macro_f1,
            "test_macro_f1": individual.test_macro_f1, "generation": individual.generation}


def evolution_summary(state: EvolutionState, ledger: UsageLedger | None, reason: str) -> dict[str, Any]:
    """The CLI / flow summary: operator, generations, counts, best, fronts and LLM usage."""
    people = state.individuals
    seeds = [i for i in people if i.generation == 0]
    evolved = [i for i in people if i.generation > 0]
    front, seed_front = pareto_front(people), pareto_front(seeds)
    best_seed, best_evolved = best(seeds), best(evolved)
    usage = ledger.snapshot() if ledger else UsageSnapshot()
    by_status: dict[str, int] = {}
    for i in people:
        by_status[i.status] = by_status.get(i.status, 0) + 1
    return {
        "operator": state.operator, "operator_reason": reason, "generations": state.completed_generation,
        "stopped": state.stopped,
        "candidates": {
            "total": len(people), "ok": by_status.get(Status.OK, 0),
            "rejected": sum(n for s, n in by_status.items() if s in Status.NOT_TRAINED),
            "failed": sum(n for s, n in by_status.items() if s in Status.FAILED),
            "by_status": by_status,
        },
        "best": _brief(best(people)), "best_seed": _brief(best_seed), "best_evolved": _brief(best_evolved),
        "front": [_brief(i) for i in front], "seed_front": [_brief(i) for i in seed_front],
        "evolved_beats_best_seed": bool(best_evolved and best_seed and best_evolved.val_macro_f1 >= best_seed.val_macro_f1),
        "seed_front_dominated": sum(any(dominates(e, s) for e in evolved if e.trained) for s in seed_front),
        "llm": {
            "requests": usage.requests, "retries": usage.retries, "tokens": usage.tokens, "cost": usage.cost_usd,
            "cache_hits": usage.cache_hits, "failures": usage.failures,
        },
    }


def _llm_client(kind: Literal["llm", "offline"], params: EvolveParams, run_dir: Path) -> tuple[LLMClient | None, UsageLedger | None]:
    if kind != "llm":
        return None, None
    from flows.secrets import with_secret_key

    return open_client(with_secret_key(params.operator.llm), RunLayout(run_dir).llm_dir)


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
    data = prepare_data(params.data)
    run_dir = Path(data["run_dir"])
    prelude = read_prelude(params.prelude_path)
    seeds = load_seeds(params.seed_folder)
    state = load_state(run_dir, settings_hash(params, seeds, prelude, data["features_path"]), kind)
    if state.completed_generation >= 0:
        logger.info("resuming %s after generation %d", data["run_id"], state.completed_generation)
    client, ledger = _llm_client(kind, params, run_dir)
    ctx = {"run_dir": run_dir, "features_path": data["features_path"], "labels": split_labels(run_dir),
           "train": params.train, "limits": params.limits}
    majority = macro_f1_table(data["baselines"]).get("majority", {}).get("val")
    progress = start_progress(params.generations)
    report_progress(progress, max(state.completed_generation, 0), params.generations)

    published = -1

    def finish_generation(generation: int) -> None:
        nonlocal published
        published = state.completed_generation = generation
        save_state(run_dir, state)
        publish_generation(state.individuals, generation, str(run_dir), majority)
        report_progress(progress, generation, params.generations)

    with make_task_runner(params.runner, params.max_parallel) as runner:  # started once: a Dask cluster is not cheap
        ctx["runner"] = runner
        if state.completed_generation < 0:
            seed_jobs, known = [], {}
            for program in seeds:
                recorded, jobs = check_children(
                    [Proposal(plan=ChildPlan(child_id=program.name, generation=0, index=0, parents=[], kind="mutation", rng_seed=""),
                               operator="seed", source=program.source)], known, prelude, params.static, run_dir
                )
                state.individuals += recorded
                seed_jobs += jobs
            state.individuals += train_all(seed_jobs, ctx, params.max_parallel)
            if not any(i.trained for i in state.individuals):
                reasons = "; ".join(f"{i.id}: {i.status} {i.reason[:120]}" for i in state.individuals)
                raise EvolutionError(f"no seed program trained successfully: {reasons}")
            finish_generation(0)

        state.stopped = ""  # a resumed run may have a larger budget: the ledger decides below
        for generation in range(state.completed_generation + 1, params.generations + 1):
            if ledger and ledger.budget_reached():
                state.stopped = f"LLM budget reached after generation {generation - 1}"
                break
            pool, note = parent_pool(state.individuals, params.selection)
            if note:
                logger.warning("generation %d: %s", generation, note)
            if not pool:
                raise EvolutionError("no trained candidate is left to be a parent")
            proposals = load_proposals(run_dir, generation)
            if proposals is None:
                proposals = _propose_generation(state, pool, generation, params, kind, prelude, client, ledger, run_dir)
                proposals = [p for p in proposals if p.status != "budget_exhausted"]
                if not proposals:
                    state.stopped = f"LLM budget reached before generation {generation}"
                    break
                save_proposals(run_dir, generation, proposals)
            else:
                logger.info("generation %d: reusing the %d children proposed before the interruption", generation, len(proposals))
            plans = [p.plan for p in proposals]
            known = {i.program_hash: i.id for i in state.individuals if i.program_hash and i.status != Status.DUPLICATE}
            recorded, jobs = check_children(proposals, known, prelude, params.static, run_dir)
            trained = train_all(jobs, ctx, params.max_parallel)
            retire(state.individuals, {p for plan in plans for p in plan.parents})
            state.individuals += sorted(recorded + trained, key=lambda i: i.id)
            ok = sum(i.status == Status.OK for i in trained)
            logger.info("generation %d: %d proposed, %d trained ok, %d not trained", generation, len(plans), ok, len(recorded))
            finish_generation(generation)

    if state.stopped:
        logger.warning("not proposing more children: %s", state.stopped)
        save_state(run_dir, state)
    if published != state.completed_generation:
        # A run killed between saving and publishing, then resumed with nothing left to do,
        # still leaves its final artifacts.
        publish_generation(state.individuals, state.completed_generation, str(run_dir), majority)

    from prefect.runtime import flow_run

    summary = evolution_summary(state, ledger, reason) | {
        "run_id": data["run_id"], "run_dir": str(run_dir), "flow_run_id": flow_run.id, "lineage": str(RunLayout(run_dir).lineage),
        "pareto_plot": str(RunLayout(run_dir).pareto_plot),
        "baselines": macro_f1_table(data["baselines"]),
    }
    update_summary(run_dir, {"evolve": summary})
    summary["report"] = write_report_task(str(run_dir))
    if params.compress.mode != "off":
        front = [member["id"] for member in summary["front"]]
        logger.info("handing the final front to compress (%s): %s", params.compress.mode, ", ".join(front))
        summary["compress"] = trigger_compression(params.compress, params.data.storage, data["run_id"], front)
    return summary
