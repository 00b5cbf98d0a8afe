"""The evolve flow's summary: operator, generations, counts, best candidates, fronts and LLM usage."""

from __future__ import annotations

from collections import Counter
from typing import Any

from evoformer.candidates.job import Status
from evoformer.evolution.population import Individual, best, dominates, pareto_front
from evoformer.evolution.report import leaderboard_order
from evoformer.evolution.state import EvolutionState
from evoformer.layout import RunLayout
from evoformer.llm import UsageLedger, UsageSnapshot
from evoformer.summaries import (
    CandidateBrief,
    CandidateCounts,
    CandidateFitness,
    EvolveSummary,
    FitnessSummary,
    LLMUsageSummary,
)


def brief(individual: Individual | None) -> CandidateBrief | None:
    if individual is None:
        return None
    return CandidateBrief(
        id=individual.id,
        status=individual.status,
        params=individual.params,
        val_macro_f1=individual.val_macro_f1,
        test_macro_f1=individual.test_macro_f1,
        generation=individual.generation,
        fitness=candidate_fitness(individual),
    )


def candidate_fitness(individual: Individual) -> CandidateFitness:
    return CandidateFitness(
        mean=individual.val_macro_f1,
        se=individual.fitness_se,
        folds_done=len(individual.fold_f1) or int(individual.val_macro_f1 is not None),
        stage=individual.stage or ("full" if individual.trained else ""),
    )


def fitness_summary(people: list[Individual], folds: int, noise_se: float, cascade: bool) -> FitnessSummary:
    return FitnessSummary(
        kind="cv" if folds > 1 else "split",
        folds=folds,
        noise_se=noise_se,
        cascade=cascade,
        screened_out=sum(i.stage == "screened" for i in people),
        fully_evaluated=sum(i.trained for i in people),
    )


def candidate_counts(people: list[Individual]) -> CandidateCounts:
    """How many candidates there are, trained ok, stopped before training, and failed in training."""
    by_status = Counter(i.status for i in people)
    return CandidateCounts(
        total=len(people),
        ok=by_status.get(Status.OK, 0),
        rejected=sum(n for s, n in by_status.items() if s in Status.NOT_TRAINED),
        failed=sum(n for s, n in by_status.items() if s in Status.FAILED),
        by_status={str(s): n for s, n in by_status.items()},
    )


def llm_usage(ledger: UsageLedger | None, people: list[Individual] | None = None) -> LLMUsageSummary:
    """The ledger's counts, and how well the LLM's children fared: a valid child trained ok (a
    screening counts) and is no copy."""
    usage = ledger.snapshot() if ledger else UsageSnapshot()
    children = [i for i in people or [] if i.operator.startswith("llm-")]
    valid = sum(i.status == Status.OK for i in children)
    seconds = sum(i.proposal_seconds or 0.0 for i in children)
    return LLMUsageSummary(
        requests=usage.requests,
        retries=usage.retries,
        tokens=usage.tokens,
        cost=usage.cost_usd,
        cache_hits=usage.cache_hits,
        failures=usage.failures,
        children=len(children),
        valid_children=valid,
        valid_rate=round(valid / len(children), 4) if children else None,
        repairs=round(sum(i.repairs for i in children) / valid, 3) if valid else None,
        tokens_per_valid_child=round(usage.tokens / valid, 1) if valid else None,
        seconds_per_valid_child=round(seconds / valid, 1) if valid else None,
    )


def evolution_summary(
    state: EvolutionState,
    ledger: UsageLedger | None,
    reason: str,
    layout: RunLayout,
    *,
    run_id: str,
    flow_run_id: Any = None,
    baselines: dict[str, dict[str, float]] | None = None,
    fitness: FitnessSummary | None = None,
    noise_se: float = 0.0,
) -> EvolveSummary:
    """The summary of the run in ``layout`` as ``state`` holds it; ``baselines`` is the macro-F1
    table (:func:`~evoformer.baselines.macro_f1_table`). ``front`` is the front selection used
    (dominance beyond ``noise_se`` standard errors); best means highest fitness."""
    people = state.individuals
    seeds = [i for i in people if i.generation == 0]
    evolved = [i for i in people if i.generation > 0]
    seed_front = pareto_front(seeds, noise_se)
    best_seed, best_evolved = best(seeds), best(evolved)
    on_test = None
    if best_seed and best_evolved and best_seed.test_macro_f1 is not None and best_evolved.test_macro_f1 is not None:
        on_test = best_evolved.test_macro_f1 > best_seed.test_macro_f1
    return EvolveSummary(
        operator=state.operator,
        operator_reason=reason,
        generations=state.completed_generation,
        stopped=state.stopped,
        candidates=candidate_counts(people),
        fitness=fitness,
        best=brief(best(people)),
        best_seed=brief(best_seed),
        best_evolved=brief(best_evolved),
        front=[brief(i) for i in pareto_front(people, noise_se)],
        leaderboard=[b for b in (brief(i) for i in sorted(people, key=leaderboard_order)) if b is not None],
        seed_front=[brief(i) for i in seed_front],
        evolved_beats_best_seed=bool(best_evolved and best_seed and best_evolved.f1 > best_seed.f1),
        evolved_beats_best_seed_on_test=on_test,
        seed_front_dominated=sum(any(dominates(e, s, noise_se) for e in evolved if e.trained) for s in seed_front),
        llm=llm_usage(ledger, people),
        run_id=run_id,
        run_dir=str(layout.root),
        flow_run_id=None if flow_run_id is None else str(flow_run_id),
        lineage=str(layout.lineage),
        pareto_plot=str(layout.pareto_plot),
        baselines=baselines or {},
    )
