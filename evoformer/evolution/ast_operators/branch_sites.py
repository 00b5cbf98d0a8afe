"""Edit sites of parallel conv branches built from a literal tuple of kernel sizes: the kernel of one
branch, and the number of branches where the width of their concatenation follows it."""

from __future__ import annotations

import ast
import random
from dataclasses import dataclass
from typing import cast

from .analysis import Program
from .kinds import Site, Target
from .specs import KERNEL_CHOICES
from .values import defaults, int_const, is_int, is_name_call, pick, single_assign


def branch_sites(prog: Program) -> list[Site]:
    """Parallel conv branches built from a literal tuple of odd kernel sizes ``for k in (3, 5)``: their
    kernels, and their number where the width of their concatenation follows it."""
    sites: list[Site] = []
    for index, comp in enumerate(n for n in ast.walk(prog.tree) if isinstance(n, (ast.ListComp, ast.GeneratorExp))):
        if len(comp.generators) != 1 or not isinstance(comp.generators[0].target, ast.Name):
            continue
        var = comp.generators[0].target.id
        tup, named = _kernel_tuple(prog, comp.generators[0].iter)
        if (
            tup is None
            or not tup.elts
            or any(not (isinstance(e, ast.Constant) and is_int(e.value)) or e.value % 2 != 1 for e in tup.elts)
        ):
            continue
        conv = next((c for c in ast.walk(comp.elt) if isinstance(c, ast.Call) and prog.ctor(c) == "Conv1d"), None)
        if conv is None:
            continue
        bound = prog.bound(conv, "Conv1d")
        kernel, padding, channels = bound.get("kernel_size"), bound.get("padding"), bound.get("out_channels")
        if not (isinstance(kernel, ast.Name) and kernel.id == var):
            continue
        same = isinstance(padding, ast.Constant) and padding.value == "same"
        halves = (
            isinstance(padding, ast.BinOp)
            and isinstance(padding.op, ast.FloorDiv)
            and isinstance(padding.left, ast.Name)
            and padding.left.id == var
            and isinstance(padding.right, ast.Constant)
            and padding.right.value == 2
        )
        if not (same or halves):
            continue
        label = ast.unparse(tup)
        sites.append(Site("kernel", f"kernels#{index}", f"conv kernels {label}", label, tup.lineno, KernelTuple(tup)))
        if not isinstance(channels, ast.Name):
            continue
        couplings = _couplings(prog, len(tup.elts), channels.id)
        counted = {named} if named else set()  # len(...) of these follows the branch count by itself
        holder = next((n for n in prog.up(comp) if isinstance(n, ast.Call)), None)
        assign = prog.parent.get(id(holder)) if holder is not None else None
        if isinstance(assign, ast.Assign):
            counted.add(ast.unparse(assign.targets[0]))
        uses_len = any(
            is_name_call(n, "len") and len(n.args) == 1 and ast.unparse(n.args[0]) in counted
            for n in ast.walk(prog.tree)
        )
        if couplings or uses_len:
            sites.append(
                Site(
                    "branch",
                    f"branches#{index}",
                    f"conv branches {label}",
                    len(tup.elts),
                    tup.lineno,
                    Branches(prog, tup, channels.id),
                )
            )
    return sites


def _kernel_tuple(prog: Program, it: ast.expr) -> tuple[ast.Tuple | ast.List | None, str | None]:
    """The literal tuple a comprehension iterates over, and the name it is reached by (if any)."""
    if isinstance(it, (ast.Tuple, ast.List)):
        return it, None
    if isinstance(it, ast.Name):
        fn = prog.function_of(it)
        scopes: tuple[ast.FunctionDef | ast.Module | None, ...] = (fn, prog.tree)
        for scope in scopes:
            if scope is None:
                continue
            if isinstance(scope, ast.FunctionDef):
                default = defaults(scope).get(it.id)
                if isinstance(default, (ast.Tuple, ast.List)) and not prog.overridden(scope, it.id):
                    return default, it.id
            for stmt in scope.body:
                target = single_assign(stmt)
                if (
                    isinstance(stmt, ast.Assign)
                    and isinstance(target, ast.Name)
                    and target.id == it.id
                    and isinstance(stmt.value, (ast.Tuple, ast.List))
                ):
                    return stmt.value, it.id
    return None, None


def _couplings(prog: Program, count: int, channels: str) -> list[ast.Constant]:
    """The ``count`` constants of ``count * channels`` (either order) that size a layer's input or a
    norm: the concatenation of the branches."""
    found: list[ast.Constant] = []
    for _, _, _, role, node in prog.width_args():
        if role in ("width_in", "width_through") and isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            for a, b in ((node.left, node.right), (node.right, node.left)):
                if int_const(a) and a.value == count and isinstance(b, ast.Name) and b.id == channels:
                    found.append(a)
    return found


def _kernels(tup: ast.Tuple | ast.List) -> list[ast.Constant]:
    """The elements of a branch kernel tuple: int literals, since ``branch_sites`` makes sites of no other."""
    return cast(list[ast.Constant], tup.elts)


@dataclass
class KernelTuple(Target):
    """A literal tuple of branch kernels: an edit (``(index, kernel)``) gives one branch another kernel,
    none that another branch has."""

    tup: ast.Tuple | ast.List

    def draw(self, site: Site, rng: random.Random) -> object:
        taken = tuple(e.value for e in _kernels(self.tup))
        index = rng.randrange(len(taken))
        new = site.rule.propose(taken[index], rng, taken=taken)
        return None if new is None else (index, new)

    def write(self, site: Site, new: object) -> str | None:
        index, kernel = cast(tuple[int, int], new)  # the edit ``draw`` made
        old = ast.unparse(self.tup)
        _kernels(self.tup)[index].value = kernel
        return f"kernel: conv kernels {old}→{ast.unparse(self.tup)}"


@dataclass
class Branches(Target):
    """A literal tuple of branch kernels: an edit (``(remove, u)``) removes a branch or adds one with a new
    kernel, and rewrites the ``n`` of every ``n * channels`` that sizes their concatenation."""

    prog: Program
    tup: ast.Tuple | ast.List
    channels: str

    def write(self, site: Site, new: object) -> str | None:
        remove, u = cast(tuple[bool, float], new)  # the edit the branch kind proposed
        tup, channels = self.tup, self.channels
        old, count = ast.unparse(tup), len(tup.elts)
        couplings = _couplings(self.prog, count, channels)
        if remove:
            tup.elts.pop(min(int(u * count), count - 1))
        else:
            taken = {e.value for e in _kernels(tup)}
            options = [k for k in KERNEL_CHOICES if k not in taken]
            if not options:
                return None
            tup.elts.append(ast.Constant(pick(tuple(options), u)))
        for const in couplings:
            const.value = len(tup.elts)
        note = f" ({count} * {channels}→{len(tup.elts)} * {channels})" if couplings else ""
        return f"branch: conv kernels {old}→{ast.unparse(tup)}{note}"
