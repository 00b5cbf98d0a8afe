"""Retraining chosen candidates of a finished (or stopped) evolve run, in place.

What the ``retrain`` flow does, without Prefect:

1. :func:`load_run_settings` reads what evolve recorded of how the run trains
   (``evolution/settings.json``: training config, sandbox limits, fitness evaluation, prelude).
2. :func:`choose` picks the candidates: ids, or every one that failed in training.
3. :func:`retrain_jobs` rebuilds their programs from ``programs/<id>.py`` and resets their records.
4. The flow evaluates them with the run's folds (a :class:`~evoformer.evolution.fitness.FitnessEvaluator`
   whose requests always train again), then :func:`apply_retrained` puts the new records into the
   saved state and lineage.

The state keeps its ``settings_hash``: a later ``evolve`` with the run's parameters and more
generations resumes it and sees the new records, so a retrained candidate can be a parent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from evoformer.baselines import macro_f1_table
from evoformer.candidates.evaluate import CandidateResult
from evoformer.candidates.job import Status, TrainConfig
from evoformer.candidates.program import CandidateProgram
from evoformer.config.fitness import FitnessConfig
from evoformer.evolution.population import Individual
from evoformer.evolution.state import EvolutionState, save_state
from evoformer.evolution.summary import evolution_summary, fitness_summary
from evoformer.evolution.training_queue import TrainingJob
from evoformer.files import write_text_atomic
from evoformer.layout import RunLayout
from evoformer.llm import UsageLedger
from evoformer.runs import read_summary
from evoformer.sandbox.limits import SandboxLimits
from evoformer.summaries import EvolveSummary

RETRAIN_DEPLOYMENT = "retrain/retrain"
"""The ``flow/deployment`` name of the served and registered retrain deployment."""

SETTINGS_FILE = "settings.json"
OUT_OF_MEMORY = ("can't allocate memory", "MemoryError", "out of memory")
"""What a failure's reason says when an allocation hit the sandbox's memory cap."""

Model = TypeVar("Model", bound=BaseModel)


class RetrainError(ValueError):
    """A retrain that cannot be done as asked (unknown candidate, run without recorded settings)."""


class RunSettings(BaseModel):
    """How the candidates of a run were trained: what ``retrain`` needs to train them again."""

    train: TrainConfig
    limits: SandboxLimits
    evaluation: FitnessConfig
    prelude: str = ""
    noise_se: float = 0.0


def settings_path(run: Path | str | RunLayout) -> Path:
    return RunLayout.of(run).evolution_dir / SETTINGS_FILE


def save_run_settings(run: Path | str | RunLayout, settings: RunSettings) -> None:
    path = settings_path(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, settings.model_dump_json(indent=2))


def load_run_settings(run: Path | str | RunLayout) -> RunSettings:
    """The settings evolve recorded; a clear error for a run made before they were recorded."""
    path = settings_path(run)
    if not path.is_file():
        raise RetrainError(f"{path} is missing: the run was made by an evolve that did not record its settings")
    return RunSettings.model_validate_json(path.read_text())


def overridden(model: Model, overrides: dict[str, Any]) -> Model:
    """``model`` with ``overrides`` (field -> value), validated; unknown fields are an error."""
    unknown = sorted(set(overrides) - set(type(model).model_fields))
    if unknown:
        raise RetrainError(f"{type(model).__name__} has no field {', '.join(unknown)}")
    return type(model).model_validate(model.model_dump() | overrides)


def load_saved_state(run: Path | str | RunLayout) -> EvolutionState:
    """The saved state as it is (no settings check: retrain keeps the run's settings hash)."""
    layout = RunLayout.of(run)
    if not layout.state.is_file():
        raise RetrainError(f"{layout.root} holds no evolution state ({layout.state} is missing)")
    return EvolutionState.model_validate_json(layout.state.read_text())


def choose(individuals: list[Individual], candidates: list[str], failed: bool) -> list[Individual]:
    """``candidates`` by id, plus every candidate that failed in training when ``failed``.
    Candidates without a program of their own (duplicates, failed proposals) cannot be retrained."""
    by_id = {i.id: i for i in individuals}
    unknown = [c for c in candidates if c not in by_id]
    if unknown:
        raise RetrainError(f"no candidate {', '.join(unknown)} in this run")
    wanted = set(candidates) | ({i.id for i in individuals if i.status in Status.FAILED} if failed else set())
    chosen = [i for i in individuals if i.id in wanted]
    untrainable = [i.id for i in chosen if i.status in (Status.DUPLICATE, Status.PROPOSAL_FAILED)]
    if untrainable:
        raise RetrainError(f"{', '.join(untrainable)} hold no program of their own (duplicate or failed proposal)")
    return chosen


def reset(individual: Individual) -> Individual:
    """The record before training: lineage kept, every outcome field back to its default."""
    outcome = set(Individual.model_fields) - {
        "id",
        "generation",
        "parents",
        "operator",
        "temperature",
        "prompt_hash",
        "description",
        "repairs",
        "proposal_seconds",
        "program_hash",
        "retired",
    }
    return Individual.model_validate(individual.model_dump(exclude=outcome) | {"status": Status.PENDING})


def retrain_jobs(layout: RunLayout, chosen: list[Individual], prelude: str) -> list[TrainingJob]:
    """Training jobs of ``chosen``, from the programs the orchestrator saved (never the copies in
    candidate folders the sandbox could write to)."""
    jobs = []
    for individual in chosen:
        source = layout.read_program(individual.id)
        if source is None:
            raise RetrainError(f"{individual.id}: its program {layout.program(individual.id)} is missing")
        program = CandidateProgram(name=individual.id, source=source, prelude=prelude)
        jobs.append(TrainingJob(individual=reset(individual), program=program))
    return jobs


def apply_retrained(
    layout: RunLayout, state: EvolutionState, retrained: list[Individual], note: str
) -> list[Individual]:
    """Replace the records of ``retrained`` in ``state`` (``note``, e.g. the overrides, becomes the
    reason of those that now train ok), save state and lineage, and return the records as saved."""
    new = {i.id: i for i in retrained}
    for n, individual in enumerate(state.individuals):
        if individual.id in new:
            record = new[individual.id]
            if record.status == Status.OK and note:
                record = record.model_copy(update={"reason": f"{record.reason}; {note}" if record.reason else note})
            state.individuals[n] = new[individual.id] = record
    save_state(layout, state)
    return [new[i.id] for i in retrained]


def overrides_note(limits: dict[str, Any], train: dict[str, Any]) -> str:
    """How a retrain differed from the run's training, for the record."""
    changes = [f"limits.{k}={v}" for k, v in sorted(limits.items())] + [
        f"train.{k}={v}" for k, v in sorted(train.items())
    ]
    return "retrained" + (f" with {', '.join(changes)}" if changes else "")


class RetrainTarget(BaseModel):
    """Which run and candidate a training belongs to (what a retrain hint names)."""

    run_id: str
    runs_dir: str
    candidate: str = Field(description="The candidate id (g01-c02), not one fold's training label.")

    @classmethod
    def of(cls, layout: RunLayout, candidate: str) -> RetrainTarget:
        return cls(run_id=layout.run_id, runs_dir=str(layout.root.parent.resolve()), candidate=candidate)


def suggested_overrides(result: CandidateResult, train: TrainConfig, limits: SandboxLimits) -> dict[str, Any]:
    """Overrides worth trying for a failure: more wall clock after a timeout, more memory after a
    kill or an allocation that failed (the address-space cap makes it an error in the program)."""
    if result.status == Status.TIMEOUT:
        return {"limits": {"timeout_s": round(limits.timeout_s * 2, 1)}}
    if result.status == Status.KILLED or any(s in result.reason for s in OUT_OF_MEMORY):
        return {"limits": {"memory_mb": limits.memory_mb * 2}}
    return {}


def retrain_parameters(target: RetrainTarget, **overrides: Any) -> dict[str, Any]:
    """The retrain deployment's parameters for one candidate, as pasted in the run form."""
    params = {"run_id": target.run_id, "candidates": [target.candidate], "storage": {"runs_dir": target.runs_dir}}
    return {"params": params | overrides}


def retrain_hint(target: RetrainTarget, result: CandidateResult, train: TrainConfig, limits: SandboxLimits) -> str:
    """One line: the deployment to run and the parameters to paste to retrain this candidate."""
    parameters = retrain_parameters(target, **suggested_overrides(result, train, limits))
    return f"to retrain {target.candidate}, run deployment {RETRAIN_DEPLOYMENT} with {json.dumps(parameters)}"


def refreshed_summary(layout: RunLayout, state: EvolutionState, settings: RunSettings, folds: int) -> EvolveSummary:
    """The ``evolve`` section of the summary rebuilt from ``state``, keeping what only evolve knew
    (why its operator was chosen, its flow run id) and the LLM ledger it saved."""
    run_summary = read_summary(layout)
    before = run_summary.get("evolve", {})
    ledger = UsageLedger.load(layout.llm_usage) if layout.llm_usage.is_file() else None
    people = state.individuals
    return evolution_summary(
        state,
        ledger,
        before.get("operator_reason", ""),
        layout,
        run_id=layout.run_id,
        flow_run_id=before.get("flow_run_id"),
        baselines=macro_f1_table(run_summary.get("baselines", {})),
        fitness=fitness_summary(people, folds, settings.noise_se, settings.evaluation.cascade.enabled),
        noise_se=settings.noise_se,
    )
