"""Operators that write child programs: the LLM (EvoPrompting prompts) or offline AST edits.

``plan_children`` decides, deterministically from the run seed, which parents each child gets
and whether it is a mutation or a crossover. ``propose`` then writes one child. Both are pure
given their inputs (LLM replies come from the on-disk cache on a resumed run), so a resumed run
proposes the same children.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import BaseModel

from evoformer.candidates.job import Status
from evoformer.config.evolve import OperatorConfig, OperatorKind  # noqa: F401  (declared with the other settings)
from evoformer.evolution.ast_operators import OperatorError, crossover, mutate
from evoformer.evolution.extract import ExtractionError, extract_program
from evoformer.evolution.population import Individual, SelectionConfig
from evoformer.evolution.prompt import ParentView, build_messages, prompt_hash
from evoformer.llm import BudgetExhausted, LLMAuthError, LLMClient, LLMError


def resolve_operator(config: OperatorConfig) -> tuple[Literal["llm", "offline"], str]:
    """The operator to use and why (``auto`` picks the LLM only when an endpoint is configured)."""
    if config.kind == "offline":
        return "offline", "offline AST operator requested"
    if config.llm.is_configured():
        where = config.llm.resolved_base_url() or "api.openai.com"
        return "llm", f"LLM operator: model {config.llm.model} at {where}"
    if config.kind == "llm":
        raise ValueError("operator 'llm' needs an endpoint: set --llm-base-url / $OPENAI_BASE_URL or $OPENAI_API_KEY")
    return (
        "offline",
        "no LLM endpoint configured ($OPENAI_BASE_URL, --llm-base-url or $OPENAI_API_KEY): offline AST operator",
    )


class ChildPlan(BaseModel):
    """One child to write: its id, parents and kind, and the seed of its random choices."""

    child_id: str
    generation: int
    index: int
    parents: list[str]
    kind: Literal["mutation", "crossover"]
    rng_seed: str


def plan_children(
    pool: list[Individual], generation: int, count: int, selection: SelectionConfig, seed: int
) -> list[ChildPlan]:
    """Draw parents uniformly from the pool: one for a mutation, k for a crossover."""
    if not pool:
        raise ValueError("no candidate is eligible as a parent (every one failed or is above the error threshold)")
    rng = random.Random(f"{seed}:plan:{generation}")
    plans = []
    for index in range(count):
        cross = len(pool) >= 2 and selection.parents_k >= 2 and rng.random() < selection.crossover_rate
        parents = rng.sample(pool, min(selection.parents_k, len(pool))) if cross else [rng.choice(pool)]
        plans.append(
            ChildPlan(
                child_id=f"g{generation:02d}-c{index:02d}",
                generation=generation,
                index=index,
                parents=[p.id for p in parents],
                kind="crossover" if cross else "mutation",
                rng_seed=f"{seed}:child:{generation}:{index}",
            )
        )
    return plans


class Proposal(BaseModel):
    """A written child, or why none was written."""

    plan: ChildPlan
    operator: str
    source: str | None = None
    status: Literal["proposed", "proposal_failed", "budget_exhausted"] = "proposed"
    reason: str = ""
    temperature: float | None = None
    prompt_hash: str | None = None
    description: str = ""


def propose(
    plan: ChildPlan,
    parents: list[ParentView],
    kind: Literal["llm", "offline"],
    config: OperatorConfig,
    allowed_imports: list[str],
    prelude: str = "",
    client: LLMClient | None = None,
) -> Proposal:
    """Write one child. Garbage and unavailable endpoints become ``proposal_failed``; a rejected
    API key raises, since every later request would fail the same way."""
    rng = random.Random(plan.rng_seed)
    if kind == "offline":
        operator = f"ast-{plan.kind}"
        try:
            if plan.kind == "crossover":
                edit = crossover(parents[0].source, parents[1].source, rng)
            else:
                edit = mutate(parents[0].source, rng, max_edits=config.max_edits)
        except OperatorError as exc:
            return Proposal(plan=plan, operator=operator, status="proposal_failed", reason=str(exc))
        return Proposal(plan=plan, operator=operator, source=edit.source, description=edit.description)

    if client is None:
        raise ValueError("the LLM operator needs a client")
    operator = f"llm-{plan.kind}"
    temperature = rng.choice(config.temperatures)
    request_seed = rng.randrange(2**31)  # varies per child: a fixed seed would make equal prompts give equal replies
    messages = build_messages(parents, allowed_imports, prelude)
    common = dict(plan=plan, operator=operator, temperature=temperature, prompt_hash=prompt_hash(messages))
    try:
        reply = client.complete(messages, temperature=temperature, sample_index=plan.index, seed=request_seed)
    except BudgetExhausted as exc:
        return Proposal(**common, status="budget_exhausted", reason=str(exc))
    except LLMAuthError:
        raise
    except LLMError as exc:
        return Proposal(**common, status="proposal_failed", reason=f"LLM request failed: {exc}")
    try:
        source = extract_program(reply.text)
    except ExtractionError as exc:
        return Proposal(**common, status="proposal_failed", reason=f"no program in the reply: {exc}")
    except (RecursionError, MemoryError) as exc:
        return Proposal(
            **common,
            status="proposal_failed",
            reason=f"no program in the reply: cannot parse it ({type(exc).__name__})",
        )
    return Proposal(**common, source=source, description=f"{'cached ' if reply.cached else ''}reply at T={temperature}")


def recent_failures(individuals: list[Individual], parent_id: str, limit: int) -> list[str]:
    """Reasons the latest failed children of a parent gave (newest last), for its next prompt."""
    if limit <= 0:
        return []
    failed = [i for i in individuals if parent_id in i.parents and i.status in Status.PROGRAM_FAULTS]
    return [f"{i.status}: {i.reason[:300]}" for i in failed[-limit:]]


def parent_view(individual: Individual, source: str, failures: list[str]) -> ParentView:
    return ParentView(
        id=individual.id,
        source=source,
        params=individual.params or 0,
        val_macro_f1=individual.val_macro_f1 or 0.0,
        recent_failures=failures,
    )
