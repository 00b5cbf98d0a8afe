"""Operators that write child programs: the LLM (EvoPrompting prompts) or offline AST edits.

``plan_children`` decides, deterministically from the run seed, which parents each child gets
and whether it is a mutation or a crossover. ``propose`` then writes one child. Both are pure
given their inputs (LLM replies come from the on-disk cache on a resumed run), so a resumed run
proposes the same children.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from evoformer import pyast
from evoformer.candidates.job import Status
from evoformer.candidates.program import CandidateProgram
from evoformer.config.evolve import OperatorConfig, OperatorKind  # noqa: F401  (declared with the other settings)
from evoformer.errors import UserError
from evoformer.evolution.ast_operators import OperatorError, crossover, mutate
from evoformer.evolution.diff_edits import DiffError, apply_blocks, parse_blocks
from evoformer.evolution.extract import ExtractionError, extract_program
from evoformer.evolution.population import Individual, SelectionConfig
from evoformer.evolution.prompt import (
    CHANGE_EXAMPLES,
    MUTATION_CHANGES,
    EditMode,
    ParentView,
    build_messages,
    prompt_hash,
    repair_message,
    shown_source,
)
from evoformer.llm import (
    BudgetExhausted,
    LLMAuthError,
    LLMClient,
    LLMContextLengthError,
    LLMError,
    LLMUnavailableError,
)
from evoformer.progress import Progress


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
    change: str | None = Field(
        default=None,
        description="The one change an LLM mutation is asked for; the mutations of a generation go through "
        "MUTATION_CHANGES in a shuffled order, so siblings are asked for different changes.",
    )


def plan_children(
    pool: list[Individual], generation: int, count: int, selection: SelectionConfig, seed: int
) -> list[ChildPlan]:
    """Draw parents uniformly from the pool: one for a mutation, k for a crossover."""
    if not pool:
        raise ValueError("no candidate is eligible as a parent (every one failed or is above the error threshold)")
    rng = random.Random(f"{seed}:plan:{generation}")
    changes = list(MUTATION_CHANGES)
    random.Random(f"{seed}:changes:{generation}").shuffle(changes)  # its own stream: the parents drawn stay as before
    mutations = 0
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
                change=None if cross else changes[mutations % len(changes)],
            )
        )
        mutations += not cross
    return plans


REPAIR_ERROR_CHARS = 300


class Proposal(BaseModel):
    """A written child, or why none was written."""

    plan: ChildPlan
    operator: str
    source: str | None = None
    status: Literal["proposed", "proposal_failed", "budget_exhausted", "llm_unreachable"] = Field(
        default="proposed",
        description="llm_unreachable: no server answered (it died or was never up); the flow stops before "
        "training the generation, so that a re-run proposes this child again from the cached replies.",
    )
    reason: str = ""
    temperature: float | None = None
    prompt_hash: str | None = None
    description: str = ""
    edit: Literal["full", "diff", "diff-fallback"] = Field(
        default="full",
        description="How the first reply gave its program: a full program, SEARCH/REPLACE blocks applied to "
        "program 1 (diff), or a whole program in a diff-mode reply whose blocks did not apply (diff-fallback).",
    )
    repairs: int = Field(default=0, description="Repair rounds used (follow-up requests showing an error).")
    seconds: float | None = Field(default=None, description="Wall clock of writing it (requests and checks).")
    repair_errors: list[str] = Field(
        default_factory=list, description=f"The error each repair round answered ({REPAIR_ERROR_CHARS} chars at most)."
    )
    trimmed: int = Field(
        default=0,
        description="How far the prompt was shortened to fit the model's context: 0 not; 1 the parents without "
        "docstrings and comments; 2 also only the first parent (crossover).",
    )


class LLMServerLost(UserError):
    """No LLM server answered some of a generation's requests: the run stops before training it."""


def stop_if_unreachable(generation: int, proposals: list[Proposal], planned: int) -> None:
    """Raise :class:`LLMServerLost` when any child is ``llm_unreachable``.

    Training the others and recording the rest as failed would make the generation complete, and a
    completed generation is never proposed again; stopping before it is saved lets the same command,
    run again once the server is back, propose it afresh, with every reply already received coming
    from the on-disk cache."""
    lost = [p for p in proposals if p.status == "llm_unreachable"]
    if not lost:
        return
    answered = sum(p.status != "llm_unreachable" for p in proposals)
    raise LLMServerLost(
        f"generation {generation}: no LLM server answered ({lost[0].reason}); {len(lost)} of {planned} children "
        f"could not be written and nothing of generation {generation} was trained (earlier generations are "
        f"saved). Start the server and run the same command again: the replies already received "
        f"({answered} of {planned} children answered) are cached and reused."
    )


_SENT_ERROR_CHARS = 2000  # the end of a longer error (a traceback's last lines) is what the model sees
Check = Callable[[str], str | None]


def propose(
    plan: ChildPlan,
    parents: list[ParentView],
    kind: Literal["llm", "offline"],
    config: OperatorConfig,
    allowed_imports: list[str],
    prelude: str = "",
    client: LLMClient | None = None,
    check: Check | None = None,
    progress: Progress | None = None,
    siblings: Sequence[str] = (),
) -> Proposal:
    """Write one child. Garbage and unavailable endpoints become ``proposal_failed``; a rejected
    API key raises, since every later request would fail the same way.

    LLM operator: a prompt too long for the model's context is sent again shorter (parents without
    docstrings and comments, then only the first parent). ``check(source)`` (the program as written,
    without the prelude) returns None for a good program or why it is not; then, for up to
    ``config.repair_rounds`` follow-up requests, the model sees the conversation, its reply and the
    error, and returns the whole corrected program (a reply without a program, and a copy of a
    parent or of a sibling, get such a round too). ``siblings`` are the programs of the children of
    this generation written before this one. The child is the last program extracted; the flow's own
    checks judge it. ``progress`` gets a line per LLM request (a reply can take minutes on a small
    local server)."""
    say = progress or (lambda line: None)
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
    mode: EditMode = config.edit_mode if plan.kind == "mutation" else "full"
    change = plan.change if config.named_changes else None
    levels = [(0, parents, False), (1, parents, True)] + ([(2, parents[:1], True)] if len(parents) > 1 else [])
    too_long: LLMContextLengthError | None = None
    tried: list[list[dict[str, str]]] = []
    for trimmed, shown, compact in levels:
        messages = build_messages(shown, allowed_imports, prelude, mode, compact, change=change)
        if messages in tried:  # nothing to remove: the same prompt would not fit either
            continue
        tried.append(messages)
        common: dict[str, Any] = dict(
            plan=plan, operator=operator, temperature=temperature, prompt_hash=prompt_hash(messages), trimmed=trimmed
        )
        say(f"{plan.child_id}: asking the LLM for a {plan.kind} (T={temperature}, prompt level {trimmed})")
        try:
            reply = client.complete(messages, temperature=temperature, sample_index=plan.index, seed=request_seed)
            break
        except LLMContextLengthError as exc:
            too_long = exc
        except BudgetExhausted as exc:
            return Proposal(**common, status="budget_exhausted", reason=str(exc))
        except LLMAuthError:
            raise
        except LLMUnavailableError as exc:
            status = "llm_unreachable" if exc.unreachable else "proposal_failed"
            return Proposal(**common, status=status, reason=f"LLM request failed: {exc}")
        except LLMError as exc:
            return Proposal(**common, status="proposal_failed", reason=f"LLM request failed: {exc}")
    else:
        shorter = "without docstrings and comments" + (" and with only the first parent" if len(parents) > 1 else "")
        return Proposal(
            **common,
            status="proposal_failed",
            reason=f"the prompt does not fit the model's context even {shorter}: {too_long}",
        )
    diff_base = shown_source(shown[0], compact) if mode == "diff" else None
    source, edit_path, no_program = _program_of(reply.text, diff_base)
    notes = [f"{'cached ' if reply.cached else ''}reply at T={temperature}"]
    if change:
        notes.append(f"asked to {change}")

    copies = _copy_descriptions(parents, siblings, prelude) if config.repair_rounds > 0 else {}

    def problem(program: str) -> tuple[str | None, str | None]:
        """Why ``program`` is not good yet (None: it is), and what it copies when it is a copy."""
        copied = copies.get(CandidateProgram(name="child", source=program, prelude=prelude).structure_hash())
        if copied is not None:
            return f"Your program is {copied} {copy_instruction(plan.change)}", copied
        return (check(program) if check is not None else None), None

    error, copied = None, None
    if config.repair_rounds > 0:
        error, copied = (f"Your reply had no program: {no_program}", None) if source is None else problem(source)
    conversation = list(messages)
    text = reply.text
    repair_errors: list[str] = []
    while error is not None and len(repair_errors) < config.repair_rounds:
        repair_errors.append(error[:REPAIR_ERROR_CHARS])
        sent = error if len(error) <= _SENT_ERROR_CHARS else "..." + error[-_SENT_ERROR_CHARS:]
        first_line = error.strip().splitlines()[0][:160] if error.strip() else ""
        say(f"{plan.child_id}: repair round {len(repair_errors)}/{config.repair_rounds}: {first_line}")
        round_temperature = temperature
        if copied:
            # A fresh start from the first prompt, with the copy named and one change asked for, at
            # the highest temperature: a small model shown its own copy in the conversation wrote it
            # again (the 1.5B model: 5 of 12 children still copies after two such rounds).
            note = f"It was {copied} {copy_instruction(plan.change)} Return the whole program."
            conversation = with_note(messages, f"An earlier reply to this request was rejected. {note}")
            round_temperature = max(config.temperatures)
            notes.append(f"copy repair at T={round_temperature}")
        else:
            conversation += [{"role": "assistant", "content": text}, {"role": "user", "content": repair_message(sent)}]
        try:
            reply = client.complete(
                conversation,
                temperature=round_temperature,
                sample_index=plan.index,
                seed=(request_seed + len(repair_errors)) % 2**31,  # each round its own cache key
            )
        except LLMAuthError:
            raise
        except BudgetExhausted as exc:
            if source is None:
                return Proposal(
                    **common,
                    status="budget_exhausted",
                    reason=str(exc),
                    edit=edit_path,
                    repairs=len(repair_errors),
                    repair_errors=repair_errors,
                )
            notes.append(f"repair round {len(repair_errors)} not sent: {exc}")
            break
        except LLMUnavailableError as exc:
            if exc.unreachable:  # not a verdict on the program: propose it again when the server is back
                return Proposal(**common, status="llm_unreachable", reason=f"LLM request failed: {exc}")
            notes.append(f"repair round {len(repair_errors)} failed: {str(exc)[:REPAIR_ERROR_CHARS]}")
            break
        except LLMError as exc:
            notes.append(f"repair round {len(repair_errors)} failed: {str(exc)[:REPAIR_ERROR_CHARS]}")
            break
        text = reply.text
        repaired, _, no_program_now = _program_of(text, None)  # repairs are full rewrites
        if repaired is None:
            error, copied = f"Your reply had no program: {no_program_now}", None
            no_program = no_program or no_program_now
            continue
        source = repaired
        error, copied = problem(source) if len(repair_errors) < config.repair_rounds else (None, None)
    extra = dict(edit=edit_path, repairs=len(repair_errors), repair_errors=repair_errors)
    if repair_errors:
        notes.append(f"{len(repair_errors)} repair round(s)")
    if trimmed:
        notes.append("prompt trimmed to fit the context" + (" (first parent only)" if trimmed == 2 else ""))
    if source is None:
        reason = f"no program in the reply: {no_program}"
        if repair_errors:
            reason += f" (none in {len(repair_errors)} repair round(s) either)"
        return Proposal(**common, **extra, status="proposal_failed", reason=reason, description="; ".join(notes))
    if edit_path != "full":
        notes.append(f"{edit_path} edit")
    return Proposal(**common, **extra, source=source, description="; ".join(notes))


def _program_of(text: str, diff_base: str | None) -> tuple[str | None, Literal["full", "diff", "diff-fallback"], str]:
    """The program of a reply, how it was obtained, and (no program) why not. With ``diff_base``
    the reply's SEARCH/REPLACE blocks are applied to it; failing that a whole program in the reply is used."""
    why_no_diff = ""
    if diff_base is not None:
        blocks = parse_blocks(text)
        why_no_diff = "the reply has no SEARCH/REPLACE block"
        if blocks:
            try:
                edited = apply_blocks(diff_base, blocks)
                pyast.parse(edited)
                return edited, "diff", ""
            except DiffError as exc:
                why_no_diff = str(exc)
            except SyntaxError as exc:
                why_no_diff = f"the edited program does not parse (line {exc.lineno}: {exc.msg})"
            except (RecursionError, MemoryError, ValueError) as exc:
                why_no_diff = f"the edited program cannot be parsed ({type(exc).__name__})"
    path: Literal["full", "diff-fallback"] = "diff-fallback" if diff_base is not None else "full"
    try:
        return extract_program(text), path, ""
    except ExtractionError as exc:
        why = str(exc)
    except (RecursionError, MemoryError) as exc:
        why = f"cannot parse it ({type(exc).__name__})"
    return None, path, f"{why_no_diff}, and no whole program: {why}" if why_no_diff else why


def _copy_descriptions(parents: list[ParentView], siblings: Sequence[str], prelude: str) -> dict[str, str]:
    """Structure hash (the flow's near-copy test) -> what a program with it copies, for the parents
    and the siblings; each hashed once per proposal, not once per repair round.

    Why siblings too: a small model given the same prompt for several children of one parent wrote
    the same child for several of them (the 1.5B model, 3 of 6), and the flow trains only the first."""
    same = "(the same once docstrings, comments and names are ignored), and copies are rejected."
    copies: dict[str, str] = {}
    for sibling in siblings:
        structure = CandidateProgram(name="sibling", source=sibling, prelude=prelude).structure_hash()
        copies[structure] = f"the same as another child already written in this generation {same}"
    for number in range(len(parents), 0, -1):  # a parent's copy is named as such, the first parent first
        parent = parents[number - 1]
        structure = CandidateProgram(name=parent.id, source=parent.source, prelude=prelude).structure_hash()
        copies[structure] = f"a copy of program {number} {same}"
    return copies


def copy_instruction(change: str | None) -> str:
    """What a copy is asked to do instead: its plan's named change (siblings have different ones), else any."""
    if change:
        return f"Make this one change to program 1 instead: {change}."
    return f"Make one concrete change, for example {CHANGE_EXAMPLES}."


def with_note(messages: list[dict[str, str]], note: str) -> list[dict[str, str]]:
    """``messages`` with ``note`` appended to the last (user) message."""
    last = messages[-1]
    return messages[:-1] + [{"role": last["role"], "content": f"{last['content']}\n\n{note}"}]


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
