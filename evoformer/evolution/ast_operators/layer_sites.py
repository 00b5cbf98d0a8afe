"""Edit sites of a program's layer structure: literal widths that a producer and its consumers share,
layers inserted into (or removed from) an ``nn.Sequential``, and a layer wrapped with a dropout or norm."""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

from evoformer import pyast

from .analysis import Program
from .kinds import Literals, Site, Target
from .specs import ACT_MODULES, DEFAULT_INPUT_DIM, DROPOUTS, ELEMENTWISE, NORMS, SPECS, WIDTH_BOUNDS
from .values import (
    evaluate,
    init_of,
    int_const,
    is_int,
    is_self_attr,
    opaque,
    pick,
    single_assign,
)

_DROPOUT_RATES = (0.1, 0.2, 0.3)  # rate of an inserted dropout


def literal_width_sites(prog: Program) -> list[Site]:
    """Literal widths shared by a producer and its consumers, rewritten together."""
    sites: list[Site] = []
    in_chain: set[int] = set()
    for seq in prog.calls:
        if prog.nn_class(seq) != "Sequential" or opaque(seq):
            continue
        for i, j, members in _chains(prog, seq.args):
            in_chain.update(id(m) for m in members)
            sites.append(_group_site(members, f"{_owner_label(prog, seq)}[{i}→{j}] width", seq.args[i].lineno))
    named = _named_constant_ids(prog)
    literal: dict[int, list[tuple[str, str, ast.Constant]]] = defaultdict(list)
    expressions: list[object] = []
    for call, ctor, _, role, node in prog.width_args():
        if isinstance(node, ast.Constant) and is_int(node.value):  # int_const, spelt out to type the key
            if id(node) not in in_chain:
                literal[node.value].append((ctor, role, node))
        else:
            expressions.append(evaluate(node, prog.env_at(call)))
    all_literals = {node.value for items in literal.values() for _, _, node in items}
    for value, items in literal.items():
        roles = [role for _, role, _ in items]
        if value < WIDTH_BOUNDS[0] or value == DEFAULT_INPUT_DIM or roles.count("width_out") != 1:
            continue
        if "width_in" not in roles or "width_rnn" in roles or "width_internal" in roles:
            continue
        if value in expressions or any(k * value in all_literals for k in range(2, 9)):
            continue
        ids = {id(node) for _, _, node in items}
        stray = [
            n
            for n in ast.walk(prog.tree)
            if isinstance(n, ast.Constant)
            and is_int(n.value)
            and n.value == value
            and id(n) not in ids
            and id(n) not in named
            and id(n) not in in_chain
        ]
        if stray:
            continue
        ctors = "→".join(dict.fromkeys(ctor for ctor, _, _ in items))
        sites.append(_group_site([node for _, _, node in items], f"{ctors} width", items[0][2].lineno))
    return sites


def _chains(prog: Program, elems: list[ast.expr]) -> Iterator[tuple[int, int, list[ast.Constant]]]:
    """In a Sequential's layers: a Linear (or Conv1d) at ``i`` whose literal output width runs through
    element-wise layers and norms of that width into the same kind of layer at ``j``."""
    for i, elem in enumerate(elems):
        kind = prog.nn_class(elem)
        if kind not in ("Linear", "Conv1d") or not isinstance(elem, ast.Call):  # nn_class names calls only
            continue
        out = prog.bound(elem, kind).get(SPECS[kind][1][0])
        if not int_const(out) or _grouped(prog, elem, kind):
            continue
        norms = {"LayerNorm"} if kind == "Linear" else {"BatchNorm1d"}  # the norm of the channel axis
        members, j = [out], i + 1
        while j < len(elems) and prog.nn_class(elems[j]) in ELEMENTWISE | norms:
            if prog.nn_class(elems[j]) in norms:
                norm_call = cast(ast.Call, elems[j])  # nn_class names calls only
                norm = norm_call.args[0] if norm_call.args else None
                if not (int_const(norm) and norm.value == out.value):
                    break
                members.append(norm)
            j += 1
        if j < len(elems) and prog.nn_class(elems[j]) == kind:
            consumer = cast(ast.Call, elems[j])  # nn_class names calls only
            if _grouped(prog, consumer, kind):
                continue
            inp = prog.bound(consumer, kind).get(SPECS[kind][0][0])
            if int_const(inp) and inp.value == out.value:
                yield i, j, [*members, inp]


def _group_site(members: list[ast.Constant], label: str, line: int) -> Site:
    value = cast(int, members[0].value)  # groups are made of int literals only
    return Site("width", f"group:{label}", label, value, line, Literals(members))


def _grouped(prog: Program, call: ast.Call, kind: str) -> bool:
    """A grouped (e.g. depthwise) convolution: its channels must stay divisible by ``groups``."""
    groups = prog.bound(call, kind).get("groups")
    return kind != "Linear" and groups is not None and not (int_const(groups) and groups.value == 1)


def _named_constant_ids(prog: Program) -> set[int]:
    """Constants that give a name its value (defaults, ``NAME = 128``): their users reference the name."""
    ids: set[int] = set()
    for node in ast.walk(prog.tree):
        if isinstance(node, ast.arguments):
            ids.update(id(d) for d in [*node.defaults, *node.kw_defaults] if d is not None)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            ids.add(id(node.value))
    return ids


def _owner_label(prog: Program, node: ast.AST) -> str:
    target = single_assign(prog.parent.get(id(node)))
    if target is not None:
        return ast.unparse(target)
    return f"nn.Sequential@{getattr(node, 'lineno', 0)}"


def sequential_sites(prog: Program) -> list[Site]:
    """Insert or remove a shape-preserving layer inside an ``nn.Sequential(...)``."""
    sites: list[Site] = []
    if prog.nn_expr() is None:
        return sites
    for index, seq in enumerate(c for c in prog.calls if prog.nn_class(c) == "Sequential"):
        if opaque(seq) or seq.keywords or not seq.args or _indexed(prog, seq):
            continue
        if not all(prog.nn_class(e) or (isinstance(e, ast.Call) and prog.callee(e)) for e in seq.args):
            continue  # e.g. nn.Sequential(OrderedDict(...)): not a list of layers
        owner = _owner_label(prog, seq)
        kinds = [_element_kind(prog, e) for e in seq.args]
        n = len(kinds)
        actions: list[tuple[str, int]] = []
        for i in range(n):
            if kinds[i] != "dropout" and (i == 0 or kinds[i - 1] != "dropout"):
                actions.append(("dropout", i))
            if i >= 1 and kinds[i - 1] in ("linear", "conv") and kinds[i] not in ("act", "norm"):
                actions.append(("act", i))
            if i >= 1 and kinds[i - 1] == "linear" and kinds[i] != "norm":
                actions.append(("norm_after", i))
            if kinds[i] == "linear" and (i == 0 or kinds[i - 1] != "norm"):
                actions.append(("norm_before", i))
        if n >= 2:
            actions += [("remove", i) for i in range(n) if kinds[i] in ("act", "dropout", "norm")]
        if actions:
            sites.append(
                Site(
                    "layer",
                    f"sequential#{index}",
                    owner,
                    n,
                    seq.lineno,
                    SequentialLayers(prog, seq),
                    {"options": tuple(actions)},
                )
            )
    return sites


def _indexed(prog: Program, call: ast.Call) -> bool:
    """Whether the container built by ``call`` may be indexed (an inserted layer would shift positions)."""
    parent = prog.parent.get(id(call))
    if isinstance(parent, ast.Assign) and is_self_attr(single_assign(parent)):
        target = ast.unparse(parent.targets[0])
        region = prog.class_of(call) or prog.tree
        return any(isinstance(n, ast.Subscript) and ast.unparse(n.value) == target for n in ast.walk(region))
    if isinstance(
        parent, (ast.Assign, ast.Return, ast.Call, ast.List, ast.Tuple, ast.keyword, ast.ListComp, ast.GeneratorExp)
    ):
        # it reaches its owner indirectly: refuse if anything named is indexed with a literal position
        return any(
            isinstance(n, ast.Subscript)
            and _literal_index(n.slice)
            and (isinstance(n.value, ast.Name) or is_self_attr(n.value))
            for n in ast.walk(prog.tree)
        )
    return True


def _literal_index(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return int_const(node)


def _element_kind(prog: Program, elem: ast.AST) -> str:
    cls = prog.nn_class(elem)
    if cls == "Linear":
        return "linear"
    if cls in ("Conv1d", "Conv2d"):
        return "conv"
    if cls in DROPOUTS:
        return "dropout"
    if cls in ELEMENTWISE and cls != "Sigmoid":  # a sigmoid is a gate: never removed
        return "act"
    if cls in NORMS:
        return "norm"
    return "other"


def _layer_norm(prog: Program, width: ast.expr) -> ast.Call | None:
    """``nn.LayerNorm(<a copy of width>)``."""
    copy = cast(ast.Expression, pyast.parse(ast.unparse(width), mode="eval"))  # mode "eval" gives an Expression
    return prog.nn_call("LayerNorm", copy.body)


def _dropout(prog: Program, u: float) -> ast.Call | None:
    return prog.nn_call("Dropout", ast.Constant(pick(_DROPOUT_RATES, u)))


@dataclass
class SequentialLayers(Target):
    """The layers of an ``nn.Sequential(...)``: an edit inserts or removes one (``(what, index, u)``)."""

    prog: Program
    seq: ast.Call

    def write(self, site: Site, new: object) -> str | None:
        what, i, u = cast(tuple[str, int, float], new)  # one of the site's options with a draw (_new_layer)
        prog, seq = self.prog, self.seq
        if what == "remove":
            removed = seq.args.pop(i)
            return f"layer: remove {ast.unparse(removed)} from {site.label} at {i}"
        layer: ast.Call | None
        if what == "dropout":
            layer = _dropout(prog, u)
        elif what == "act":
            layer = prog.nn_call(pick(tuple(ACT_MODULES), u))
        else:
            # norm edits are offered next to a Linear only (sequential_sites), and nn_class names calls only
            linear = cast(ast.Call, seq.args[i - 1] if what == "norm_after" else seq.args[i])
            width = prog.bound(linear, "Linear").get("out_features" if what == "norm_after" else "in_features")
            if width is None:
                return None
            layer = _layer_norm(prog, width)
        if layer is None:
            return None
        seq.args.insert(i, layer)
        return f"layer: insert {ast.unparse(layer)} into {site.label} at {i}"


def wrap_sites(prog: Program) -> list[Site]:
    """``self.x = nn.Linear(...)`` used only as ``self.x(...)``: put a dropout or LayerNorm in front."""
    sites: list[Site] = []
    if prog.nn_expr() is None:
        return sites
    for cls in prog.classes.values():
        init = init_of(cls)
        if init is None:
            continue
        for stmt in init.body:
            target = single_assign(stmt)
            if (
                target is None
                or not isinstance(stmt, ast.Assign)
                or prog.nn_class(stmt.value) != "Linear"
                or not is_self_attr(target)
            ):
                continue
            name = ast.unparse(target)
            uses = [
                n for n in ast.walk(cls) if isinstance(n, ast.Attribute) and n is not target and ast.unparse(n) == name
            ]
            if not uses or any(
                not (isinstance(user := prog.parent.get(id(n)), ast.Call) and user.func is n) for n in uses
            ):
                continue
            linear = cast(ast.Call, stmt.value)  # nn_class named it a Linear: a call
            width = prog.bound(linear, "Linear").get("in_features")
            sites.append(
                Site(
                    "layer",
                    f"wrap:{name}",
                    name,
                    None,
                    stmt.lineno,
                    Wrapped(prog, stmt, width),
                    {"options": (("dropout",), ("norm",))},
                )
            )
    return sites


@dataclass
class Wrapped(Target):
    """``self.x = <layer>``: an edit wraps the layer as ``nn.Sequential(<dropout or norm>, <layer>)``."""

    prog: Program
    stmt: ast.Assign
    width: ast.expr | None

    def write(self, site: Site, new: object) -> str | None:
        what, u = cast(tuple[str, float], new)  # one of the site's options with a draw (_new_layer)
        first = (
            _layer_norm(self.prog, self.width) if what == "norm" and self.width is not None else _dropout(self.prog, u)
        )
        if first is None:
            return None
        seq = self.prog.nn_call("Sequential", first, self.stmt.value)
        if seq is None:
            return None
        self.stmt.value = seq
        return f"layer: insert {ast.unparse(first)} before {site.label} (wrapped in nn.Sequential)"
