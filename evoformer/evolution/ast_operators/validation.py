"""Whether a child is a valid child of its parents: it parses, passes the static check, keeps the entry
point's signature, differs from every parent and breaks no constraint that its parent kept."""

from __future__ import annotations

import ast

from evoformer.candidates.program import ENTRY_POINT, CandidateProgram
from evoformer.candidates.static_check import check_source

from .analysis import Program
from .kinds import SITE_KINDS
from .results import OperatorError
from .specs import ATTENTION, ELEMENTWISE, ROLE_KIND, SPECS
from .values import evaluate, is_int, is_size


def violations(prog: Program) -> list[str]:
    """Constraint breaches visible statically (messages carry no line numbers, to compare programs)."""
    out: list[str] = []
    for call, ctor, bound in prog.ctor_calls():
        env = prog.env_at(call)
        values = {param: evaluate(node, env) for param, node in bound.items()}
        for param, role in SPECS[ctor]:
            value = values.get(param)
            kind_name = ROLE_KIND.get(role) if role is not None else None
            kind = SITE_KINDS.get(kind_name) if kind_name is not None else None
            if value is not None and kind is not None and kind.legal is not None and not kind.legal(value):
                out.append(f"{ctor}.{param}={value!r}")
        if ctor in ATTENTION:
            width, heads = prog.attention_width(call, ctor), values.get(ATTENTION[ctor][1])
            if is_size(heads) and width % heads:
                out.append(f"{ctor}: d_model {width} not divisible by {heads} heads")
        if ctor == "GroupNorm":
            groups, channels = values.get("num_groups"), values.get("num_channels")
            if is_size(groups) and is_int(channels) and channels % groups:
                out.append(f"GroupNorm: {channels} channels not divisible by {groups} groups")
    for seq in prog.calls:
        if prog.nn_class(seq) == "Sequential":
            out += _sequential_mismatches(prog, seq)
    for node in ast.walk(prog.tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.FloorDiv):
            env = prog.env_at(node)
            a, b = evaluate(node.left, env), evaluate(node.right, env)
            if is_int(a) and is_int(b) and b != 0 and a % b:
                out.append(f"inexact {ast.unparse(node)}")
    return sorted(out)


def _sequential_mismatches(prog: Program, seq: ast.Call) -> list[str]:
    """Adjacent layers of an ``nn.Sequential`` whose feature widths (last axis) do not meet."""
    out: list[str] = []
    env = prog.env_at(seq)
    width: object = None  # the known width flowing out of the previous element
    for elem in seq.args:
        cls = prog.nn_class(elem)
        if cls == "Linear" and isinstance(elem, ast.Call):  # nn_class names calls only
            bound = prog.bound(elem, "Linear")
            needed = evaluate(bound.get("in_features"), env)
            if is_int(width) and is_int(needed) and needed != width:
                out.append(f"Sequential: Linear({needed}, ...) after width {width}")
            width = evaluate(bound.get("out_features"), env)
        elif cls == "LayerNorm" and isinstance(elem, ast.Call):
            needed = evaluate(elem.args[0] if elem.args else None, env)
            if is_int(width) and is_int(needed) and needed != width:
                out.append(f"Sequential: LayerNorm({needed}) after width {width}")
            width = needed if is_int(needed) else width
        elif cls not in ELEMENTWISE:
            width = None
    return out


def _entry_signature(tree: ast.Module) -> str | None:
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == ENTRY_POINT), None)
    return None if fn is None else ast.dump(fn.args)


def program_hash(source: str) -> str:
    return CandidateProgram(name="candidate", source=source).program_hash()


def parse(source: str, role: str = "parent") -> Program:
    """A parent program, analysed; ``OperatorError`` when it does not parse or has no entry point."""
    try:
        prog = Program(source)
    except SyntaxError as exc:
        raise OperatorError(f"{role} does not parse: line {exc.lineno}: {exc.msg}") from exc
    if _entry_signature(prog.tree) is None:
        raise OperatorError(f"{role} defines no top-level {ENTRY_POINT}")
    return prog


def reject_reason(child: str, parent: Program, parent_hashes: list[str]) -> str | None:
    """Why ``child`` is not a valid child of ``parent`` (None: it is)."""
    report = check_source(child)
    if not report.ok:
        return "static check: " + "; ".join(report.reasons)
    try:
        prog = Program(child)
    except SyntaxError as exc:  # pragma: no cover - unparse output always parses
        return f"does not parse: {exc.msg}"
    if _entry_signature(prog.tree) != _entry_signature(parent.tree):
        return f"{ENTRY_POINT} changed"
    if program_hash(child) in parent_hashes:
        return "same program as a parent"
    new = set(violations(prog)) - set(violations(parent))
    if new:
        return "breaks " + "; ".join(sorted(new))
    return None
