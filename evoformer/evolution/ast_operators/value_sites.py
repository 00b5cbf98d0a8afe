"""Edit sites that hold one value: literal hyper-parameters of layer constructors, named values (defaulted
arguments, module and local constants), stacks of blocks and activations."""

from __future__ import annotations

import ast
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

from evoformer.candidates.program import ENTRY_POINT

from .analysis import Program
from .kinds import SITE_KINDS, DefaultKeyword, Literals, Site, Target
from .specs import (
    ACT_CLASSES,
    ACT_FUNCTIONS,
    ACT_MODULES,
    ATTENTION,
    CONVS,
    DEFAULT_INPUT_DIM,
    IMPLICIT,
    RNNS,
    ROLE_KIND,
    SPECS,
    TORCH_ACT_FUNCTIONS,
    TRANSFORMER_ACTIVATIONS,
    WIDTH_BOUNDS,
    Value,
)
from .values import (
    defaults,
    evaluate,
    init_of,
    int_const,
    is_int,
    is_rate,
    is_size,
    num_const,
    opaque,
    role_names,
    single_assign,
)

# Role of a constructor parameter -> the kind of site its literal (or left-out default) is.
_CONSTRUCTOR_KINDS = {
    "heads": "heads",
    "depth": "depth",
    "dropout": "dropout",
    "width_internal": "width",
    "kernel": "kernel",
    "activation": "activation",
}


def constructor_sites(prog: Program) -> list[Site]:
    """Literal hyper-parameters of layer constructors (``nhead=4``, ``dropout=0.1``, ``num_layers=2`` ...),
    and those left at a default that is a slot (GRU ``num_layers=1``, transformer ``activation='relu'``)."""
    sites: list[Site] = []
    ordinals: dict[str, int] = defaultdict(int)
    for call, ctor, bound in prog.ctor_calls():
        ordinal = ordinals[ctor]
        ordinals[ctor] += 1
        places: list[tuple[str, str | None, object, Target]] = [
            (param, role, node.value, Literals([node]))
            for param, role in SPECS[ctor]
            if isinstance(node := bound.get(param), ast.Constant)
        ]
        if ctor in IMPLICIT and not opaque(call):
            param, default = IMPLICIT[ctor]
            if param not in bound:
                places.append((param, dict(SPECS[ctor])[param], default, DefaultKeyword(call, param)))
        for param, role, value, target in places:
            found = _constructor_site(prog, call, ctor, bound, role, value, target)
            if found is not None:
                kind, where, params = found
                # a site is found only for a value its kind takes: a number or an activation name
                site_value = cast(Value, value)
                sites.append(
                    Site(
                        kind,
                        f"{ctor}.{param}#{ordinal}",
                        f"{ctor.split('.')[-1]}.{param}",
                        site_value,
                        call.lineno,
                        where,
                        params,
                        crossable=True,
                    )
                )
    return sites


def _constructor_site(
    prog: Program,
    call: ast.Call,
    ctor: str,
    bound: dict[str, ast.expr],
    role: str | None,
    value: object,
    target: Target,
) -> tuple[str, Target, dict[str, object]] | None:
    """The kind, target and rule facts of one constructor parameter's site (None: it is not a site)."""
    kind = _CONSTRUCTOR_KINDS.get(role) if role is not None else None
    params: dict[str, object] = {}
    if kind is None:
        return None
    if kind == "activation":
        if value not in TRANSFORMER_ACTIVATIONS:
            return None
        params["choices"] = TRANSFORMER_ACTIVATIONS
    elif kind == "kernel":
        kernel_target = _kernel_target(target, bound.get("padding"))
        if kernel_target is None:
            return None
        target = kernel_target
    elif not _legal(kind, value) or (kind == "dropout" and _single_layer_rnn(prog, call, ctor)):
        return None
    elif kind == "heads":
        params["widths"] = (prog.attention_width(call, ctor),)
    return kind, target, params


def _legal(kind: str, value: object) -> bool:
    """``value`` satisfies the rule of ``kind``; a TypeError for a kind without one (never a constructor's)."""
    legal = SITE_KINDS[kind].legal
    if legal is None:
        raise TypeError(f"site kind {kind!r} has no legality rule")
    return legal(value)


def _single_layer_rnn(prog: Program, call: ast.Call, ctor: str) -> bool:
    """A one-layer GRU/LSTM/RNN: its ``dropout`` does nothing (torch warns), so it is not a slot."""
    if ctor not in RNNS:
        return False
    layers = evaluate(prog.bound(call, ctor).get("num_layers", ast.Constant(1)), prog.env_at(call))
    return not (is_int(layers) and layers >= 2)


def _kernel_target(target: Target, padding: ast.expr | None) -> Literals | None:
    """A literal odd conv kernel whose padding is ``'same'`` or its literal half (rewritten with it)."""
    if not isinstance(target, Literals):
        return None
    node = target.nodes[0]
    same = isinstance(padding, ast.Constant) and padding.value == "same"
    # the kernel literal is checked to be an int only below; ``//`` on another literal fails here as it always did
    paired = int_const(padding) and padding.value == cast(int, node.value) // 2
    if not is_int(node.value) or node.value % 2 != 1 or not (same or paired):
        return None
    return Literals([node], half=padding if paired and isinstance(padding, ast.Constant) else None)


def named_sites(prog: Program) -> list[Site]:
    """Named numeric values: defaulted arguments, module constants and local constants."""
    found: list[tuple[ast.AST, str, ast.Constant]] = []
    scopes: list[ast.FunctionDef] = [fn for cls in prog.classes.values() if (fn := init_of(cls)) is not None]
    scopes += [fn for name, fn in prog.functions.items() if name != ENTRY_POINT]
    for fn in scopes:
        found += [
            (fn, name, node) for name, node in defaults(fn).items() if num_const(node) and not prog.overridden(fn, name)
        ]
        assigned: dict[str, int] = defaultdict(int)
        for node in ast.walk(fn):
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    if isinstance(target, ast.Name):
                        assigned[target.id] += 1
        found += [(fn, name, node) for name, node in _constants(fn.body, assigned)]
    counts: dict[str, int] = defaultdict(int)
    for stmt in prog.tree.body:
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    counts[target.id] += 1
    found += [(prog.tree, name, node) for name, node in _constants(prog.tree.body, counts)]
    sites = [_named_site(prog, region, name, node) for region, name, node in found]
    return [site for site in sites if site is not None]


def _constants(body: list[ast.stmt], counts: dict[str, int]) -> Iterator[tuple[str, ast.Constant]]:
    """``NAME = <number>`` statements of ``body`` whose name is assigned only there."""
    for stmt in body:
        target = single_assign(stmt)
        if (
            isinstance(stmt, ast.Assign)
            and isinstance(target, ast.Name)
            and num_const(stmt.value)
            and counts[target.id] == 1
        ):
            yield target.id, stmt.value


def _named_site(prog: Program, region: ast.AST, name: str, node: ast.Constant) -> Site | None:
    """A named value whose every use has one kind (width, depth, heads, dropout or kernel)."""
    roles = prog.roles(region, name)
    kinds = {ROLE_KIND.get(r, "other") for r in roles}
    if len(kinds) != 1:
        return None
    kind, value = kinds.pop(), cast(int | float, node.value)  # named_sites finds numeric literals only (num_const)
    params: dict[str, object] | None = None
    if kind == "width":
        params = _named_width(prog, region, name, value)
    elif kind == "depth" and is_size(value) and not ("depth_stack" in roles and value < 2):
        params = {}  # a single block (a stack of one) may change shapes
    elif kind == "heads" and is_size(value):
        params = {"widths": tuple(_linked_widths(prog, region, name))}
    elif kind == "dropout" and is_rate(value):
        params = {}
    elif kind == "kernel" and is_int(value) and value % 2 == 1 and _kernel_padding_follows(prog, region, name):
        params = {}
    if params is None:
        return None
    return Site(
        kind, f"{kind}:{name}", name, value, getattr(node, "lineno", 0), Literals([node]), params, crossable=True
    )


def _named_width(prog: Program, region: ast.AST, name: str, value: object) -> dict[str, object] | None:
    """A named width keeps every attention layer it sizes divisible by its head count (None: not a site)."""
    if not is_int(value) or value < WIDTH_BOUNDS[0] or value == DEFAULT_INPUT_DIM:  # small: a multiplier
        return None
    heads = _linked_heads(prog, region, name)
    if heads is None or math.lcm(8, *heads) > WIDTH_BOUNDS[1] // 2:
        return None
    return {"heads": tuple(heads)}


def _attention_uses(prog: Program, region: ast.AST, name: str, depth: int = 0) -> Iterator[tuple[ast.Call, str, str]]:
    """Attention layers whose ``d_model`` (``"width"``) or head count (``"heads"``) comes from ``name``,
    followed into user-defined classes and functions it is passed to."""
    names, scan = prog.aliases(region, name)
    for call in prog.calls:
        if not prog.inside(call, scan):
            continue
        ctor = prog.ctor(call)
        if ctor in ATTENTION:
            bound = prog.bound(call, ctor)
            if names & role_names(bound.get(ATTENTION[ctor][0])):
                yield call, ctor, "width"
            if names & role_names(bound.get(ATTENTION[ctor][1])):
                yield call, ctor, "heads"
        elif depth < 3:
            for fn, param in prog.passed_on(call, names):
                yield from _attention_uses(prog, fn, param, depth + 1)


def _linked_heads(prog: Program, region: ast.AST, name: str) -> list[int] | None:
    """Head counts of the attention layers whose ``d_model`` is ``name`` (None: one is unknown)."""
    heads: list[int] = []
    for call, ctor, which in _attention_uses(prog, region, name):
        if which == "width":
            value = evaluate(prog.bound(call, ctor).get(ATTENTION[ctor][1]), prog.env_at(call))
            if not is_size(value):
                return None
            heads.append(value)
    return heads


def _linked_widths(prog: Program, region: ast.AST, name: str) -> list[int]:
    """``d_model`` of the attention layers whose head count is ``name``."""
    return [
        prog.attention_width(call, ctor)
        for call, ctor, which in _attention_uses(prog, region, name)
        if which == "heads"
    ]


def _kernel_padding_follows(prog: Program, region: ast.AST, name: str) -> bool:
    """Every conv sized by kernel ``name`` pads with an expression of it (or ``'same'``)."""
    for call, ctor, bound in prog.ctor_calls():
        if ctor not in CONVS or not prog.inside(call, region):
            continue
        if name in role_names(bound.get("kernel_size")):
            padding = bound.get("padding")
            if not (isinstance(padding, ast.Constant) and padding.value == "same") and (
                padding is None or name not in {n.id for n in ast.walk(padding) if isinstance(n, ast.Name)}
            ):
                return False
    return True


def stack_sites(prog: Program) -> list[Site]:
    """``range(n)`` literal that sizes a stack of blocks applied one after another (n >= 2)."""
    sites = []
    for call in prog.calls:
        if (
            id(call) in prog.stacking_ranges
            and isinstance(node := call.args[0], ast.Constant)
            and is_int(node.value)
            and node.value >= 2
        ):
            sites.append(
                Site(
                    "depth",
                    f"stack@{call.lineno}",
                    f"blocks {ast.unparse(call)}",
                    node.value,
                    call.lineno,
                    Literals([node]),
                )
            )
    return sites


def activation_sites(prog: Program) -> list[Site]:
    """Activation modules (``nn.GELU()``) and functions (``F.relu(x)``, ``torch.tanh(x)``)."""
    sites: list[Site] = []
    params = {"choices": ACT_FUNCTIONS}
    module_index = function_index = 0
    for call in prog.calls:
        cls = prog.nn_class(call)
        if cls in ACT_MODULES:
            sites.append(
                Site(
                    "activation",
                    f"act_module#{module_index}",
                    f"nn.{cls}",
                    ACT_MODULES[cls],
                    call.lineno,
                    ActivationModule(prog, call),
                    params,
                )
            )
            module_index += 1
            continue
        func = call.func
        if not (isinstance(func, ast.Attribute) and func.attr in ACT_FUNCTIONS):
            continue
        base = ast.unparse(func.value)
        if not (base in prog.f_bases or (base == prog.torch and func.attr in TORCH_ACT_FUNCTIONS)):
            continue
        if len(call.args) != 1 or isinstance(call.args[0], ast.Starred):
            continue
        if any(k.arg not in ("inplace", "approximate", "negative_slope") for k in call.keywords):
            continue
        sites.append(
            Site(
                "activation",
                f"act_fn#{function_index}",
                ast.unparse(func),
                func.attr,
                call.lineno,
                ActivationFunction(prog, call),
                params,
            )
        )
        function_index += 1
    return sites


@dataclass
class ActivationModule(Target):
    """``nn.GELU()``: replaced by another activation module (its arguments dropped)."""

    prog: Program
    call: ast.Call

    def write(self, site: Site, new: object) -> str | None:
        new = cast(str, new)  # an activation name: the site's proposal or a name it accepts
        call = self.call
        old = ast.unparse(call.func)
        if isinstance(call.func, ast.Attribute):
            call.func.attr = ACT_CLASSES[new]
        else:
            base = self.prog.nn_expr()
            if base is None:
                return None
            call.func = ast.Attribute(base, ACT_CLASSES[new], ast.Load())
        call.args, call.keywords = [], []
        return f"activation: {old}→{ast.unparse(call.func)}"


@dataclass
class ActivationFunction(Target):
    """``F.relu(x)``: the function replaced by another activation function (its keywords dropped)."""

    prog: Program
    call: ast.Call

    def write(self, site: Site, new: object) -> str | None:
        expr = self.prog.function_expr(cast(str, new))  # an activation name: the site's proposal or one it accepts
        if expr is None:
            return None
        old = ast.unparse(self.call.func)
        self.call.func, self.call.keywords = expr, []
        return f"activation: {old}→{ast.unparse(expr)}"
