"""The public operators: the slots of a program, mutation and crossover."""

from __future__ import annotations

import ast
import contextlib
import random
from collections import defaultdict
from collections.abc import Iterator

from .analysis import Program
from .kinds import TRANSPLANT_KINDS, Site
from .results import AstEdit, OperatorError, Slot
from .sites import collect_sites
from .specs import MUTATION_KINDS
from .validation import parse, program_hash, reject_reason
from .values import fmt


def hyperparameter_slots(source: str) -> list[Slot]:
    """Every mutable place of a program: hyper-parameter values and structural edit sites."""
    return [site.slot() for site in collect_sites(parse(source))]


def mutation_kinds(source: str) -> list[str]:
    """The kinds of mutation that apply to a program (``width``, ``depth``, ``heads`` ...)."""
    kinds = {site.kind for site in collect_sites(parse(source))}
    return [k for k in MUTATION_KINDS if k in kinds]


_INTERNAL = (RecursionError, TypeError, AttributeError, KeyError, IndexError, ValueError)


@contextlib.contextmanager
def _internal_errors_as_operator_errors() -> Iterator[None]:
    """An analysis failure on an unusual program costs that child, not the evolution run."""
    try:
        yield
    except OperatorError:
        raise
    except _INTERNAL as exc:
        raise OperatorError(f"internal error of the AST operator: {type(exc).__name__}: {exc}") from exc


def mutate(source: str, rng: random.Random, max_edits: int = 2, attempts: int = 20) -> AstEdit:
    """A child with 1..``max_edits`` random edits that passes static checks and differs from the parent.

    Raises ``OperatorError`` when none can be made (also, with ``internal error`` in the message, when
    the analysis itself fails on an unusual program: an evolution run goes on without that child)."""
    with _internal_errors_as_operator_errors():
        return _mutate(source, rng, max_edits, attempts)


def crossover(source_a: str, source_b: str, rng: random.Random, attempts: int = 20) -> AstEdit:
    """A child of A taking values from B: uniform over shared slots (same constructor keyword or same
    argument name), else, for different architectures, B's values by kind of slot. Raises
    ``OperatorError`` when no valid child differs from both parents."""
    with _internal_errors_as_operator_errors():
        return _crossover(source_a, source_b, rng, attempts)


def _mutate(source: str, rng: random.Random, max_edits: int, attempts: int) -> AstEdit:
    parent = parse(source)
    if not collect_sites(parent):
        raise OperatorError("nothing to mutate: no recognised hyper-parameter or layer site")
    parent_hashes = [program_hash(source)]
    reason = "no attempt made"
    for _ in range(max(1, attempts)):
        current, edits, kinds, touched = source, [], [], set()
        for _ in range(rng.randint(1, max(1, max_edits))):
            prog = Program(current)
            sites = [s for s in collect_sites(prog) if s.key not in touched]
            available = sorted({s.kind for s in sites})
            if not available:
                break
            kind = rng.choice(available)
            site = rng.choice([s for s in sites if s.kind == kind])
            proposal = site.propose(rng)
            description = site.assign(proposal) if proposal is not None else None
            if description is None:
                continue
            current = ast.unparse(ast.fix_missing_locations(prog.tree)) + "\n"
            touched.add(site.key)
            edits.append(description)
            kinds.append(kind)
        if not edits:
            reason = "no edit could be drawn"
            continue
        reason = reject_reason(current, parent, parent_hashes) or ""
        if not reason:
            return AstEdit(source=current, description="; ".join(edits), kinds=sorted(set(kinds)))
    raise OperatorError(f"no valid mutation after {attempts} attempts (last: {reason})")


def _crossover(source_a: str, source_b: str, rng: random.Random, attempts: int) -> AstEdit:
    parent_a, parent_b = parse(source_a, "parent A"), parse(source_b, "parent B")
    hashes = [program_hash(source_a), program_hash(source_b)]
    slots_b = {s.key: s for s in collect_sites(parent_b) if s.crossable}
    shared = [
        s.key
        for s in collect_sites(parent_a)
        if s.crossable and s.key in slots_b and s.kind == slots_b[s.key].kind and s.value != slots_b[s.key].value
    ]
    reason = "no attempt made"
    for _ in range(max(1, attempts)):
        prog = Program(source_a)
        sites = collect_sites(prog)
        edits: list[str] | None
        if shared:
            edits, kept = _uniform(prog, sites, slots_b, shared, rng)
            if not edits:
                reason = "B's values do not fit A"
                continue
            description = "crossover (uniform over shared slots): from B: " + "; ".join(edits)
            if kept:
                description += "; kept from A: " + ", ".join(kept)
        else:
            edits = _transplant(sites, parent_b, rng)
            if edits is None:
                raise OperatorError(
                    "parents share no differing hyper-parameter slot, and B has no activation, "
                    "dropout rate, width, depth or head count that A could take"
                )
            if not edits:
                reason = "nothing transplanted"
                continue
            description = (
                "crossover (no shared slot differs: different architectures; A takes B's values by kind): "
                + "; ".join(edits)
            )
        child = ast.unparse(ast.fix_missing_locations(prog.tree)) + "\n"
        reason = reject_reason(child, parent_a, hashes) or ""
        if not reason:
            return AstEdit(source=child, description=description, kinds=["crossover"])
    raise OperatorError(f"no valid crossover after {attempts} attempts (last: {reason})")


def _uniform(
    prog: Program, sites: list[Site], slots_b: dict[str, Site], shared: list[str], rng: random.Random
) -> tuple[list[str], list[str]]:
    """Each shared slot takes B's value with probability 0.5; at least one does, and one keeps A's."""
    by_key = {s.key: s for s in sites}
    take = [rng.random() < 0.5 for _ in shared]
    if not any(take):
        take[rng.randrange(len(take))] = True
    if len(shared) >= 2 and all(take):
        take[rng.randrange(len(take))] = False
    edits, kept = [], []
    for key, chosen in zip(shared, take, strict=False):
        site, value = by_key.get(key), slots_b[key].value
        if site is None:
            continue
        if not chosen or not site.accepts(value):
            kept.append(f"{site.label}={fmt(site.value)}")
            continue
        description = site.assign(value)
        if description:
            edits.append(description.split(": ", 1)[-1])
    return edits, kept


def _transplant(sites: list[Site], parent_b: Program, rng: random.Random) -> list[str] | None:
    """A's sites take values B uses for the same kind of slot (activations, dropout rates, widths, depths,
    heads), each with probability 0.5; None when B has no such value that A lacks."""
    pools: dict[str, set[object]] = defaultdict(set)
    for site in collect_sites(parent_b):
        if site.kind in TRANSPLANT_KINDS and site.value is not None and not isinstance(site.value, bool):
            pools[site.kind].add(site.value)
    options = []
    for site in sites:
        if site.kind not in TRANSPLANT_KINDS or site.value is None:
            continue
        values = sorted((v for v in pools[site.kind] if v != site.value and site.accepts(v)), key=fmt)
        if values:
            options.append((site, values))
    if not options:
        return None
    chosen = [rng.random() < 0.5 for _ in options]
    if not any(chosen):
        chosen[rng.randrange(len(chosen))] = True
    edits = []
    for (site, values), take in zip(options, chosen, strict=False):
        if take:
            description = site.assign(rng.choice(values))
            if description:
                edits.append(description)
    return edits
