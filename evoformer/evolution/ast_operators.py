"""The offline evolution operator: mutation and crossover on a candidate program's AST (no LLM).

Every edit is chosen so that the child keeps its shapes consistent by construction:

* a width is only changed where it is one named value that every consumer references (a defaulted
  ``__init__`` argument, a module or local constant), a literal that a producer and all its
  consumers share (rewritten together), or internal to one layer (``dim_feedforward``);
* heads always divide ``d_model`` (384, the default encoder's width, when it is the input width);
* inserted layers are shape-preserving (dropout, an activation, ``LayerNorm`` of a known width);
* a parallel-branch tuple only grows or shrinks when the ``n * channels`` that sizes the
  concatenation is rewritten with it.

Children are checked statically (``check_source``), against the parent's constraints
(``d_model % nhead``, exact integer divisions, positive sizes) and must differ by AST hash. Nothing
here executes candidate code. All randomness comes from the ``random.Random`` passed in.
"""

from __future__ import annotations

import ast
import contextlib
import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pydantic import BaseModel

from evoformer import pyast
from evoformer.candidates.program import ENTRY_POINT, CandidateProgram
from evoformer.candidates.static_check import check_source

DEFAULT_INPUT_DIM = 384  # width of the default encoder (all-MiniLM-L6-v2)
DEFAULT_NUM_CLASSES = 3
WIDTH_FACTORS = (0.5, 0.75, 1.25, 1.5, 2.0)
WIDTH_BOUNDS = (8, 2048)
DEPTH_BOUNDS = (1, 8)
HEAD_CHOICES = (1, 2, 3, 4, 6, 8, 12, 16)
DROPOUT_CHOICES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
KERNEL_CHOICES = (1, 3, 5, 7, 9)
ACT_MODULES = {"ReLU": "relu", "GELU": "gelu", "SiLU": "silu", "Tanh": "tanh", "LeakyReLU": "leaky_relu"}
ACT_CLASSES = {name: cls for cls, name in ACT_MODULES.items()}
ACT_FUNCTIONS = ("relu", "gelu", "silu", "tanh", "leaky_relu")
TORCH_ACT_FUNCTIONS = ("relu", "tanh")  # activations that also live in the ``torch`` namespace
TRANSFORMER_ACTIVATIONS = ("relu", "gelu")
MUTATION_KINDS = ("width", "depth", "heads", "dropout", "kernel", "activation", "layer", "branch")
_TRANSPLANT_KINDS = ("activation", "dropout", "width", "depth", "heads")

# Constructor -> its positional parameters and the role of each (None: not a hyper-parameter).
_RNN = (("input_size", "width_in"), ("hidden_size", "width_rnn"), ("num_layers", "depth"), ("bias", None),
        ("batch_first", None), ("dropout", "dropout"), ("bidirectional", None))
_CONV = (("in_channels", "width_in"), ("out_channels", "width_out"), ("kernel_size", "kernel"), ("stride", None),
         ("padding", "padding"), ("dilation", None), ("groups", "groups"), ("bias", None))
_TRANSFORMER_LAYER = (("d_model", "width_through"), ("nhead", "heads"), ("dim_feedforward", "width_internal"),
                      ("dropout", "dropout"), ("activation", "activation"))
_SPECS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "Linear": (("in_features", "width_in"), ("out_features", "width_out"), ("bias", None)),
    "Conv1d": _CONV,
    "Conv2d": _CONV,
    "GRU": _RNN,
    "LSTM": _RNN,
    "RNN": _RNN,
    "LayerNorm": (("normalized_shape", "width_through"), ("eps", None)),
    "BatchNorm1d": (("num_features", "width_through"), ("eps", None)),
    "GroupNorm": (("num_groups", "groups"), ("num_channels", "width_through")),
    "Embedding": (("num_embeddings", None), ("embedding_dim", "width_out")),
    "TransformerEncoderLayer": _TRANSFORMER_LAYER,
    "TransformerDecoderLayer": _TRANSFORMER_LAYER,
    "TransformerEncoder": (("encoder_layer", None), ("num_layers", "depth")),
    "MultiheadAttention": (("embed_dim", "width_through"), ("num_heads", "heads"), ("dropout", "dropout")),
    "Dropout": (("p", "dropout"), ("inplace", None)),
    "Dropout1d": (("p", "dropout"), ("inplace", None)),
    "AlphaDropout": (("p", "dropout"), ("inplace", None)),
    "functional.dropout": (("input", None), ("p", "dropout"), ("training", None)),
}
_ATTENTION = {"TransformerEncoderLayer": ("d_model", "nhead"), "TransformerDecoderLayer": ("d_model", "nhead"),
              "MultiheadAttention": ("embed_dim", "num_heads")}
_IMPLICIT = {"GRU": ("num_layers", 1), "LSTM": ("num_layers", 1), "RNN": ("num_layers", 1),
             "TransformerEncoderLayer": ("activation", "relu"), "TransformerDecoderLayer": ("activation", "relu")}
_DROPOUTS = {"Dropout", "Dropout1d", "AlphaDropout"}
_NORMS = {"LayerNorm", "BatchNorm1d"}
_ELEMENTWISE = set(ACT_MODULES) | _DROPOUTS | {"Identity", "ELU", "Mish", "Sigmoid"}
_ROLE_KIND = {"width_in": "width", "width_out": "width", "width_through": "width", "width_rnn": "width",
              "width_internal": "width", "depth": "depth", "depth_stack": "depth", "heads": "heads",
              "dropout": "dropout", "kernel": "kernel"}

Value = int | float | str | None


class AstEdit(BaseModel):
    """A child program and what was changed to make it."""

    source: str
    description: str
    kinds: list[str] = []


class Slot(BaseModel):
    """One mutable place of a program: a hyper-parameter value or a structural edit site."""

    kind: str
    key: str
    label: str
    value: int | float | str | None = None
    line: int = 0


class OperatorError(ValueError):
    """No valid child could be made."""


# --------------------------------------------------------------------------------------------
# Static facts about one parsed program
# --------------------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int_const(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and _is_int(node.value)


def _num_const(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and _is_num(node.value)


def _bind(call: ast.Call, params: list[str]) -> dict[str, ast.expr]:
    """Map a call's arguments to parameter names (positional arguments stop at a ``*args``)."""
    bound: dict[str, ast.expr] = {}
    for index, arg in enumerate(call.args):
        if isinstance(arg, ast.Starred):
            break
        if index < len(params):
            bound[params[index]] = arg
    for keyword in call.keywords:
        if keyword.arg:
            bound[keyword.arg] = keyword.value
    return bound


def _opaque(call: ast.Call) -> bool:
    """The call passes ``*args`` or ``**kwargs``: its bindings cannot be known."""
    return any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords)


def _eval(node: ast.AST | None, env: dict[str, object]) -> object:
    """Value of a small constant expression, or None when unknown."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env.get(node.id)
    if _is_self_attr(node):
        return env.get(f"self.{node.attr}")
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_eval(e, env) for e in node.elts]
        return None if any(i is None for i in items) else tuple(items)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _eval(node.operand, env)
        return -value if _is_num(value) else None
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, env), _eval(node.right, env)
        if not (_is_num(left) and _is_num(right)):
            return None
        try:
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if isinstance(node.op, ast.FloorDiv):
                return left // right
            if isinstance(node.op, ast.Div):
                return left / right
            if isinstance(node.op, ast.Mod):
                return left % right
        except ZeroDivisionError:
            return None
        return None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        args = [_eval(a, env) for a in node.args]
        if any(a is None for a in args):
            return None
        if node.func.id == "len" and len(args) == 1 and isinstance(args[0], tuple):
            return len(args[0])
        if node.func.id == "int" and len(args) == 1 and _is_num(args[0]):
            return int(args[0])
        if node.func.id in ("max", "min") and args and all(_is_num(a) for a in args):
            return max(args) if node.func.id == "max" else min(args)
    return None


def _role_names(expr: ast.AST | None) -> set[str]:
    """Names (and ``self.x``) whose value scales ``expr``: operands of + - * and dividends, not divisors."""
    names: set[str] = set()

    def visit(node: ast.AST | None) -> None:
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif _is_self_attr(node):
            names.add(f"self.{node.attr}")
        elif isinstance(node, ast.BinOp):
            visit(node.left)
            if not isinstance(node.op, (ast.FloorDiv, ast.Div, ast.Mod)):
                visit(node.right)
        elif isinstance(node, ast.UnaryOp):
            visit(node.operand)

    visit(expr)
    return names


class _Program:
    """A parsed program with its import aliases, scopes, constant values and layer constructors."""

    def __init__(self, source: str) -> None:
        self.tree = pyast.parse(source)
        self.parent: dict[int, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parent[id(child)] = node
        self.classes = {n.name: n for n in self.tree.body if isinstance(n, ast.ClassDef)}
        self.functions = {n.name: n for n in self.tree.body if isinstance(n, ast.FunctionDef)}
        self.calls = sorted((n for n in ast.walk(self.tree) if isinstance(n, ast.Call)),
                            key=lambda n: (n.lineno, n.col_offset))
        self._aliases()
        self.module_env: dict[str, object] = {}
        for stmt in self.tree.body:
            self._assign_into(stmt, self.module_env)
        self._envs: dict[int, dict[str, object]] = {}
        self._active: set[int] = set()
        self.stacking_ranges = self._stacking_ranges()

    # -- imports -----------------------------------------------------------------------------
    def _aliases(self) -> None:
        self.torch: str | None = None
        self.nn: str | None = None
        self.F: str | None = None
        self.nn_imported: set[str] = set()
        for node in self.tree.body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "torch" or (alias.name.startswith("torch.") and alias.asname is None):
                        self.torch = alias.asname or "torch"
                    elif alias.name == "torch.nn":
                        self.nn = alias.asname
                    elif alias.name == "torch.nn.functional":
                        self.F = alias.asname
            elif isinstance(node, ast.ImportFrom) and not node.level:
                for alias in node.names:
                    if node.module == "torch" and alias.name == "nn":
                        self.nn = alias.asname or "nn"
                    elif node.module == "torch.nn" and alias.name == "functional":
                        self.F = alias.asname or "functional"
                    elif node.module == "torch.nn":
                        self.nn_imported.add(alias.asname or alias.name)
        self.nn_bases = {b for b in (self.nn, f"{self.torch}.nn" if self.torch else None) if b}
        self.f_bases = {b for b in (self.F, *(f"{b}.functional" for b in self.nn_bases)) if b}

    def nn_expr(self) -> ast.expr | None:
        """An expression for ``torch.nn`` under this program's imports."""
        if self.nn:
            return ast.Name(self.nn, ast.Load())
        if self.torch:
            return ast.Attribute(ast.Name(self.torch, ast.Load()), "nn", ast.Load())
        return None

    def nn_call(self, cls: str, *args: ast.expr) -> ast.Call | None:
        base = self.nn_expr()
        if base is None:
            return None
        return ast.Call(ast.Attribute(base, cls, ast.Load()), list(args), [])

    def function_expr(self, name: str) -> ast.expr | None:
        """An expression for the activation function ``name`` (``F.gelu``, ``torch.tanh`` ...)."""
        if self.torch and name in TORCH_ACT_FUNCTIONS and (name == "tanh" or not self.F):
            return ast.Attribute(ast.Name(self.torch, ast.Load()), name, ast.Load())
        if self.F:
            return ast.Attribute(ast.Name(self.F, ast.Load()), name, ast.Load())
        base = self.nn_expr()
        if base is None:
            return None
        return ast.Attribute(ast.Attribute(base, "functional", ast.Load()), name, ast.Load())

    # -- constructors ------------------------------------------------------------------------
    def nn_class(self, node: ast.AST) -> str | None:
        """``Linear`` for ``nn.Linear(...)`` / ``torch.nn.Linear(...)`` / an imported ``Linear(...)``."""
        if not isinstance(node, ast.Call):
            return None
        func = node.func
        if isinstance(func, ast.Attribute) and ast.unparse(func.value) in self.nn_bases:
            return func.attr
        if isinstance(func, ast.Name) and func.id in self.nn_imported and func.id not in self.classes:
            return func.id
        return None

    def ctor(self, call: ast.Call) -> str | None:
        """The spec name of a recognised layer constructor (or functional dropout)."""
        name = self.nn_class(call)
        if name in _SPECS:
            return name
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == "dropout" and ast.unparse(func.value) in self.f_bases:
            return "functional.dropout"
        return None

    def bound(self, call: ast.Call, ctor: str) -> dict[str, ast.expr]:
        return _bind(call, [p for p, _ in _SPECS[ctor]])

    # -- scopes ------------------------------------------------------------------------------
    def up(self, node: ast.AST) -> Iterator[ast.AST]:
        while id(node) in self.parent:
            node = self.parent[id(node)]
            yield node

    def function_of(self, node: ast.AST) -> ast.FunctionDef | None:
        return next((n for n in self.up(node) if isinstance(n, ast.FunctionDef)), None)

    def class_of(self, node: ast.AST) -> ast.ClassDef | None:
        return next((n for n in self.up(node) if isinstance(n, ast.ClassDef)), None)

    def inside(self, node: ast.AST, region: ast.AST) -> bool:
        return node is region or any(n is region for n in self.up(node))

    def callee(self, call: ast.Call) -> tuple[ast.FunctionDef, list[str]] | None:
        """The user-defined class ``__init__`` or top-level function a call invokes, with its parameters."""
        if not isinstance(call.func, ast.Name):
            return None
        name = call.func.id
        if name in self.classes:
            init = _init_of(self.classes[name])
            return (init, _param_names(init, method=True)) if init else None
        if name in self.functions and name != ENTRY_POINT:
            fn = self.functions[name]
            return fn, _param_names(fn, method=False)
        return None

    def owner_name(self, fn: ast.FunctionDef) -> str | None:
        """The name a call uses to reach ``fn``: its class for ``__init__``, else its own name."""
        cls = self.class_of(fn)
        if cls is not None:
            return cls.name if fn.name == "__init__" and cls.name in self.classes else None
        return fn.name if self.functions.get(fn.name) is fn else None

    def overridden(self, fn: ast.FunctionDef, param: str) -> bool:
        """Some call passes ``param`` explicitly (so its default is not what runs)."""
        owner = self.owner_name(fn)
        if owner is None:
            return True
        params = _param_names(fn, method=self.class_of(fn) is not None)
        for call in self.calls:
            named = isinstance(call.func, ast.Name) and call.func.id == owner
            if named and (_opaque(call) or param in _bind(call, params)):
                return True
        return False

    # -- constant environments ---------------------------------------------------------------
    def _assign_into(self, stmt: ast.stmt, env: dict[str, object]) -> None:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target, value = stmt.target, stmt.value
        else:
            return
        if isinstance(target, ast.Name):
            env[target.id] = _eval(value, env)
        elif _is_self_attr(target):
            env[f"self.{target.attr}"] = _eval(value, env)

    def env(self, fn: ast.FunctionDef | None) -> dict[str, object]:
        """Known constant values inside ``fn``: module constants, defaults, call-site values, locals."""
        if fn is None:
            return self.module_env
        key = id(fn)
        if key in self._envs:
            return self._envs[key]
        if key in self._active:
            return dict(self.module_env)
        self._active.add(key)
        env = dict(self.module_env)
        cls = self.class_of(fn)
        if cls is not None and fn.name != "__init__":
            init = _init_of(cls)
            if init is not None:
                env.update({k: v for k, v in self.env(init).items() if k.startswith("self.")})
        defaults = _defaults(fn)
        for index, name in enumerate(_param_names(fn, method=cls is not None)):
            if name in defaults:
                env[name] = _eval(defaults[name], self.module_env)
            else:
                env[name] = self._from_calls(fn, name, index)
        for stmt in fn.body:
            self._assign_into(stmt, env)
        self._active.discard(key)
        self._envs[key] = env
        return env

    def _from_calls(self, fn: ast.FunctionDef, name: str, index: int) -> object:
        if self.functions.get(fn.name) is fn and fn.name == ENTRY_POINT:
            return {0: DEFAULT_INPUT_DIM, 1: DEFAULT_NUM_CLASSES}.get(index)
        owner = self.owner_name(fn)
        if owner is None:
            return None
        params = _param_names(fn, method=self.class_of(fn) is not None)
        values = []
        for call in self.calls:
            if isinstance(call.func, ast.Name) and call.func.id == owner:
                bound = _bind(call, params)
                if name not in bound:
                    return None
                values.append(_eval(bound[name], self.env(self.function_of(call))))
        if values and values[0] is not None and all(v == values[0] for v in values):
            return values[0]
        return None

    def env_at(self, node: ast.AST) -> dict[str, object]:
        return self.env(self.function_of(node))

    # -- roles of named values ---------------------------------------------------------------
    def _stacking_ranges(self) -> set[int]:
        """``range(n)`` calls that size a stack of blocks applied one after another."""
        found: set[int] = set()
        for call in self.calls:
            cls = self.nn_class(call)
            if cls not in ("ModuleList", "Sequential") or len(call.args) != 1:
                continue
            arg = call.args[0]
            stacked = cls == "Sequential" and isinstance(arg, ast.Starred)
            comp = arg.value if isinstance(arg, ast.Starred) else arg
            if not isinstance(comp, (ast.ListComp, ast.GeneratorExp)) or len(comp.generators) != 1:
                continue
            it = comp.generators[0].iter
            if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range"
                    and len(it.args) == 1):
                continue
            if cls == "ModuleList":
                stacked = self._applied_in_sequence(call)
            if stacked:
                found.add(id(it))
        return found

    def _applied_in_sequence(self, call: ast.Call) -> bool:
        """``self.x = nn.ModuleList(...)`` and some method does ``for b in self.x: h = b(h, ...)``."""
        assign = self.parent.get(id(call))
        cls = self.class_of(call)
        if not (isinstance(assign, ast.Assign) and cls is not None and len(assign.targets) == 1):
            return False
        target = ast.unparse(assign.targets[0])
        for loop in ast.walk(cls):
            if not (isinstance(loop, ast.For) and isinstance(loop.target, ast.Name)
                    and ast.unparse(loop.iter) == target):
                continue
            for stmt in ast.walk(loop):
                if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                        and isinstance(stmt.value, ast.Call) and isinstance(stmt.value.func, ast.Name)
                        and stmt.value.func.id == loop.target.id and stmt.value.args
                        and isinstance(stmt.value.args[0], ast.Name) and stmt.value.args[0].id == stmt.targets[0].id):
                    return True
        return False

    def roles(self, region: ast.AST, name: str, depth: int = 0) -> set[str]:
        """Where the value of ``name`` (visible in ``region``) ends up: width, heads, depth ..."""
        names = {name}
        cls = self.class_of(region) if isinstance(region, ast.FunctionDef) else None
        for node in ast.walk(region):
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) and node.value.id == name
                    and len(node.targets) == 1):
                target = node.targets[0]
                if _is_self_attr(target):
                    names.add(f"self.{target.attr}")
                else:
                    names.add("<aliased>")  # copied to another local: stop here
        if "<aliased>" in names:
            return {"unknown"}
        scan = cls if cls is not None and len(names) > 1 else region
        roles: set[str] = set()
        for call in self.calls:
            if not self.inside(call, scan):
                continue
            ctor = self.ctor(call)
            if ctor is not None:
                for param, role in _SPECS[ctor]:
                    node = self.bound(call, ctor).get(param)
                    if node is not None and names & _role_names(node):
                        roles.add(role or "other")
                continue
            target = self.callee(call)
            if target is not None and depth < 3:
                fn, params = target
                for param, node in _bind(call, params).items():
                    if names & _role_names(node):
                        roles |= self.roles(fn, param, depth + 1)
                continue
            if id(call) in self.stacking_ranges and names & _role_names(call.args[0]):
                roles.add("depth_stack")
            elif (isinstance(call.func, ast.Name) and call.func.id == "range"
                  and any(names & _role_names(arg) for arg in call.args)):
                roles.add("other")
        return roles


def _is_self_attr(node: ast.AST) -> bool:
    """``self.x``."""
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"


def _init_of(cls: ast.ClassDef) -> ast.FunctionDef | None:
    return next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)


def _param_names(fn: ast.FunctionDef, method: bool) -> list[str]:
    names = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]
    return names[1:] if method and names else names


def _defaults(fn: ast.FunctionDef) -> dict[str, ast.expr]:
    positional = [*fn.args.posonlyargs, *fn.args.args]
    out = {a.arg: d for a, d in zip(positional[len(positional) - len(fn.args.defaults):], fn.args.defaults)}
    out.update({a.arg: d for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults) if d is not None})
    return out


# --------------------------------------------------------------------------------------------
# Edit sites
# --------------------------------------------------------------------------------------------


@dataclass
class _Site:
    """One place an edit can be made; ``propose`` draws a new value, ``assign`` writes it."""

    kind: str
    key: str
    label: str
    value: Value
    line: int
    propose: Callable[[random.Random], object]
    assign: Callable[[object], str | None]
    crossable: bool = False
    accepts: Callable[[object], bool] = field(default=lambda value: True)

    def slot(self) -> Slot:
        return Slot(kind=self.kind, key=self.key, label=self.label, value=self.value, line=self.line)


def _fmt(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _scale_width(value: int, rng: random.Random, multiple: int = 8) -> int | None:
    factors = list(WIDTH_FACTORS)
    rng.shuffle(factors)
    low = max(WIDTH_BOUNDS[0], multiple)
    for factor in factors:
        new = round(value * factor / multiple) * multiple
        new = max(low, min(WIDTH_BOUNDS[1] // multiple * multiple, new))
        if new != value:
            return new
    return None


def _new_depth(value: int, rng: random.Random, low: int = DEPTH_BOUNDS[0]) -> int | None:
    options = [value + d for d in (-2, -1, 1, 2) if low <= value + d <= DEPTH_BOUNDS[1]]
    return rng.choice(options) if options else None


def _new_dropout(value: float, rng: random.Random) -> float | None:
    options = [p for p in DROPOUT_CHOICES if abs(p - value) > 1e-9 and abs(p - value) <= 0.2 + 1e-9]
    return rng.choice(options) if options else None


def _new_heads(value: int, widths: list[int], rng: random.Random) -> int | None:
    options = [h for h in HEAD_CHOICES if h != value and all(w % h == 0 for w in widths)]
    return rng.choice(options) if options else None


def _heads_fit(value: object, widths: list[int]) -> bool:
    return _is_int(value) and value >= 1 and all(w % value == 0 for w in widths)


def _new_kernel(value: int, rng: random.Random, taken: tuple[int, ...] = ()) -> int | None:
    options = [k for k in KERNEL_CHOICES if k != value and k not in taken]
    return rng.choice(options) if options else None


def _set_const(node: ast.Constant, label: str, kind: str) -> Callable[[object], str | None]:
    def assign(new: object) -> str | None:
        old = node.value
        if new is None or new == old:
            return None
        node.value = new
        return f"{kind}: {label} {_fmt(old)}→{_fmt(new)}"

    return assign


def _collect_sites(prog: _Program) -> list[_Site]:
    """Every edit site of a program, in source order."""
    sites: list[_Site] = []
    sites += _constructor_sites(prog)
    sites += _named_sites(prog)
    sites += _literal_width_sites(prog)
    sites += _activation_sites(prog)
    sites += _sequential_sites(prog)
    sites += _wrap_sites(prog)
    sites += _branch_sites(prog)
    sites += _stack_sites(prog)
    return sites


def _attention_width(prog: _Program, call: ast.Call, ctor: str) -> int:
    """``d_model`` of an attention layer; the default encoder's width when it is not known statically."""
    value = _eval(prog.bound(call, ctor).get(_ATTENTION[ctor][0]), prog.env_at(call))
    return value if _is_int(value) and value > 0 else DEFAULT_INPUT_DIM


def _constructor_sites(prog: _Program) -> list[_Site]:
    """Literal hyper-parameters of layer constructors (``nhead=4``, ``dropout=0.1``, ``num_layers=2`` ...)."""
    sites: list[_Site] = []
    ordinals: dict[str, int] = defaultdict(int)
    for call in prog.calls:
        ctor = prog.ctor(call)
        if ctor is None:
            continue
        ordinal = ordinals[ctor]
        ordinals[ctor] += 1
        bound = prog.bound(call, ctor)
        short = ctor.split(".")[-1]
        for param, role in _SPECS[ctor]:
            node = bound.get(param)
            key, label = f"{ctor}.{param}#{ordinal}", f"{short}.{param}"
            if role == "heads" and _int_const(node):
                widths = [_attention_width(prog, call, ctor)]
                sites.append(_Site("heads", key, label, node.value, call.lineno,
                                   lambda rng, v=node.value, w=widths: _new_heads(v, w, rng),
                                   _set_const(node, label, "heads"), crossable=True,
                                   accepts=lambda v, w=widths: _heads_fit(v, w)))
            elif role == "depth" and _int_const(node) and node.value >= 1:
                sites.append(_Site("depth", key, label, node.value, call.lineno,
                                   lambda rng, v=node.value: _new_depth(v, rng),
                                   _set_const(node, label, "depth"), crossable=True,
                                   accepts=lambda v: _is_int(v) and DEPTH_BOUNDS[0] <= v <= DEPTH_BOUNDS[1]))
            elif (role == "dropout" and _num_const(node) and 0 <= node.value < 1
                  and not _single_layer_rnn(prog, call, ctor)):
                sites.append(_Site("dropout", key, label, node.value, call.lineno,
                                   lambda rng, v=node.value: _new_dropout(v, rng),
                                   _set_const(node, label, "dropout"), crossable=True,
                                   accepts=lambda v: _is_num(v) and 0 <= v < 1))
            elif role == "width_internal" and _int_const(node) and node.value >= 1:
                sites.append(_Site("width", key, label, node.value, call.lineno,
                                   lambda rng, v=node.value: _scale_width(v, rng),
                                   _set_const(node, label, "width"), crossable=True,
                                   accepts=lambda v: _is_int(v) and WIDTH_BOUNDS[0] <= v <= WIDTH_BOUNDS[1]))
            elif role == "kernel" and _int_const(node):
                site = _kernel_site(call, bound, node, key, label)
                if site is not None:
                    sites.append(site)
            elif role == "activation" and isinstance(node, ast.Constant) and node.value in TRANSFORMER_ACTIVATIONS:
                sites.append(_Site("activation", key, label, node.value, call.lineno,
                                   lambda rng, v=node.value: next(a for a in TRANSFORMER_ACTIVATIONS if a != v),
                                   _set_const(node, label, "activation"), crossable=True,
                                   accepts=lambda v: v in TRANSFORMER_ACTIVATIONS))
        if ctor in _IMPLICIT and not _opaque(call):
            param, default = _IMPLICIT[ctor]
            if param not in bound:
                sites.append(_implicit_site(call, ctor, ordinal, param, default))
    return sites


def _single_layer_rnn(prog: _Program, call: ast.Call, ctor: str) -> bool:
    """A one-layer GRU/LSTM/RNN: its ``dropout`` does nothing (torch warns), so it is not a slot."""
    if ctor not in ("GRU", "LSTM", "RNN"):
        return False
    layers = _eval(prog.bound(call, ctor).get("num_layers", ast.Constant(1)), prog.env_at(call))
    return not (_is_int(layers) and layers >= 2)


def _implicit_site(call: ast.Call, ctor: str, ordinal: int, param: str, default: Value) -> _Site:
    """A parameter left at its default (GRU ``num_layers=1``, transformer ``activation='relu'``)."""
    label = f"{ctor}.{param}"

    def assign(new: object) -> str | None:
        if new is None or new == default:
            return None
        call.keywords.append(ast.keyword(arg=param, value=ast.Constant(new)))
        kind = "depth" if param == "num_layers" else "activation"
        return f"{kind}: {label} {_fmt(default)}→{_fmt(new)}"

    if param == "num_layers":
        return _Site("depth", f"{ctor}.{param}#{ordinal}", label, default, call.lineno,
                     lambda rng: _new_depth(1, rng), assign, crossable=True,
                     accepts=lambda v: _is_int(v) and DEPTH_BOUNDS[0] <= v <= DEPTH_BOUNDS[1])
    return _Site("activation", f"{ctor}.{param}#{ordinal}", label, default, call.lineno,
                 lambda rng: "gelu", assign, crossable=True, accepts=lambda v: v in TRANSFORMER_ACTIVATIONS)


def _kernel_site(call: ast.Call, bound: dict[str, ast.expr], node: ast.Constant, key: str,
                 label: str) -> _Site | None:
    """A literal conv kernel; its literal ``padding = k // 2`` is rewritten with it, odd sizes only."""
    padding = bound.get("padding")
    same = isinstance(padding, ast.Constant) and padding.value == "same"
    paired = _int_const(padding) and padding.value == node.value // 2
    if node.value % 2 != 1 or not (same or paired):
        return None

    def assign(new: object) -> str | None:
        old = node.value
        if not _is_int(new) or new == old or new % 2 != 1:
            return None
        node.value = new
        if paired:
            padding.value = new // 2
        return f"kernel: {label} {old}→{new}"

    return _Site("kernel", key, label, node.value, call.lineno, lambda rng: _new_kernel(node.value, rng), assign,
                 crossable=True, accepts=lambda v: _is_int(v) and v % 2 == 1 and v <= max(KERNEL_CHOICES))


def _named_sites(prog: _Program) -> list[_Site]:
    """Named numeric values: defaulted arguments, module constants and local constants."""
    sites: list[_Site] = []
    scopes: list[ast.FunctionDef] = [fn for cls in prog.classes.values() if (fn := _init_of(cls)) is not None]
    scopes += [fn for name, fn in prog.functions.items() if name != ENTRY_POINT]
    for fn in scopes:
        for name, node in _defaults(fn).items():
            if _num_const(node) and not prog.overridden(fn, name):
                site = _named_site(prog, fn, name, node)
                if site is not None:
                    sites.append(site)
        assigned = defaultdict(int)
        for node in ast.walk(fn):
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                    if isinstance(target, ast.Name):
                        assigned[target.id] += 1
        for stmt in fn.body:
            if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                    and _num_const(stmt.value) and assigned[stmt.targets[0].id] == 1):
                site = _named_site(prog, fn, stmt.targets[0].id, stmt.value)
                if site is not None:
                    sites.append(site)
    counts = defaultdict(int)
    for stmt in prog.tree.body:
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    counts[target.id] += 1
    for stmt in prog.tree.body:
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                and _num_const(stmt.value) and counts[stmt.targets[0].id] == 1):
            site = _named_site(prog, prog.tree, stmt.targets[0].id, stmt.value)
            if site is not None:
                sites.append(site)
    return sites


def _named_site(prog: _Program, region: ast.AST, name: str, node: ast.Constant) -> _Site | None:
    """A named value whose every use has one kind (width, depth, heads, dropout or kernel)."""
    roles = prog.roles(region, name)
    kinds = {_ROLE_KIND.get(r, "other") for r in roles}
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    value = node.value
    label = name
    key = f"{kind}:{name}"
    line = getattr(node, "lineno", 0)
    if kind == "width":
        if not _is_int(value) or value < WIDTH_BOUNDS[0] or value == DEFAULT_INPUT_DIM:  # small: a multiplier
            return None
        heads = _linked_heads(prog, region, name)
        if heads is None:
            return None
        multiple = math.lcm(8, *heads) if heads else 8
        if multiple > WIDTH_BOUNDS[1] // 2:
            return None
        return _Site("width", key, label, value, line, lambda rng: _scale_width(value, rng, multiple),
                     _set_const(node, label, "width"), crossable=True,
                     accepts=lambda v: _is_int(v) and WIDTH_BOUNDS[0] <= v <= WIDTH_BOUNDS[1]
                     and all(v % h == 0 for h in heads))
    if kind == "depth":
        if not _is_int(value) or value < 1:
            return None
        if "depth_stack" in roles and value < 2:  # a single block may change shapes
            return None
        return _Site("depth", key, label, value, line, lambda rng: _new_depth(value, rng),
                     _set_const(node, label, "depth"), crossable=True,
                     accepts=lambda v: _is_int(v) and DEPTH_BOUNDS[0] <= v <= DEPTH_BOUNDS[1])
    if kind == "heads":
        if not _is_int(value) or value < 1:
            return None
        widths = _linked_widths(prog, region, name)
        return _Site("heads", key, label, value, line, lambda rng: _new_heads(value, widths, rng),
                     _set_const(node, label, "heads"), crossable=True, accepts=lambda v: _heads_fit(v, widths))
    if kind == "dropout":
        if not (0 <= value < 1):
            return None
        return _Site("dropout", key, label, value, line, lambda rng: _new_dropout(float(value), rng),
                     _set_const(node, label, "dropout"), crossable=True, accepts=lambda v: _is_num(v) and 0 <= v < 1)
    if kind == "kernel":
        if not _is_int(value) or value % 2 != 1 or not _kernel_padding_follows(prog, region, name):
            return None
        return _Site("kernel", key, label, value, line, lambda rng: _new_kernel(value, rng),
                     _set_const(node, label, "kernel"), crossable=True,
                     accepts=lambda v: _is_int(v) and v % 2 == 1 and v <= max(KERNEL_CHOICES))
    return None


def _attention_uses(prog: _Program, region: ast.AST, name: str,
                    depth: int = 0) -> Iterator[tuple[ast.Call, str, str]]:
    """Attention layers whose ``d_model`` (``"width"``) or head count (``"heads"``) comes from ``name``,
    followed into user-defined classes and functions it is passed to."""
    names = {name} | {f"self.{n.targets[0].attr}" for n in ast.walk(region)
                      if isinstance(n, ast.Assign) and len(n.targets) == 1 and _is_self_attr(n.targets[0])
                      and isinstance(n.value, ast.Name) and n.value.id == name}
    scan = prog.class_of(region) if len(names) > 1 and isinstance(region, ast.FunctionDef) else region
    for call in prog.calls:
        if scan is None or not prog.inside(call, scan):
            continue
        ctor = prog.ctor(call)
        if ctor in _ATTENTION:
            bound = prog.bound(call, ctor)
            if names & _role_names(bound.get(_ATTENTION[ctor][0])):
                yield call, ctor, "width"
            if names & _role_names(bound.get(_ATTENTION[ctor][1])):
                yield call, ctor, "heads"
        elif depth < 3 and (target := prog.callee(call)) is not None:
            fn, params = target
            for param, node in _bind(call, params).items():
                if names & _role_names(node):
                    yield from _attention_uses(prog, fn, param, depth + 1)


def _linked_heads(prog: _Program, region: ast.AST, name: str) -> list[int] | None:
    """Head counts of the attention layers whose ``d_model`` is ``name`` (None: one is unknown)."""
    heads = []
    for call, ctor, which in _attention_uses(prog, region, name):
        if which == "width":
            value = _eval(prog.bound(call, ctor).get(_ATTENTION[ctor][1]), prog.env_at(call))
            if not _is_int(value) or value < 1:
                return None
            heads.append(value)
    return heads


def _linked_widths(prog: _Program, region: ast.AST, name: str) -> list[int]:
    """``d_model`` of the attention layers whose head count is ``name``."""
    return [_attention_width(prog, call, ctor) for call, ctor, which in _attention_uses(prog, region, name)
            if which == "heads"]


def _kernel_padding_follows(prog: _Program, region: ast.AST, name: str) -> bool:
    """Every conv sized by kernel ``name`` pads with an expression of it (or ``'same'``)."""
    for call in prog.calls:
        ctor = prog.ctor(call)
        if ctor not in ("Conv1d", "Conv2d") or not prog.inside(call, region):
            continue
        bound = prog.bound(call, ctor)
        if name in _role_names(bound.get("kernel_size")):
            padding = bound.get("padding")
            if not (isinstance(padding, ast.Constant) and padding.value == "same") and (
                    padding is None or name not in {n.id for n in ast.walk(padding) if isinstance(n, ast.Name)}):
                return False
    return True


def _width_positions(prog: _Program) -> Iterator[tuple[ast.Call, str, str, str, ast.expr]]:
    for call in prog.calls:
        ctor = prog.ctor(call)
        if ctor is None:
            continue
        bound = prog.bound(call, ctor)
        for param, role in _SPECS[ctor]:
            if role and role.startswith("width") and param in bound:
                yield call, ctor, param, role, bound[param]


def _group_site(members: list[ast.Constant], label: str, line: int) -> _Site:
    value = members[0].value

    def assign(new: object) -> str | None:
        if not _is_int(new) or new == value:
            return None
        for member in members:
            member.value = new
        return f"width: {label} {value}→{new}"

    return _Site("width", f"group:{label}", label, value, line, lambda rng: _scale_width(value, rng), assign,
                 accepts=lambda v: _is_int(v) and WIDTH_BOUNDS[0] <= v <= WIDTH_BOUNDS[1])


def _literal_width_sites(prog: _Program) -> list[_Site]:
    """Literal widths shared by a producer and its consumers, rewritten together."""
    sites: list[_Site] = []
    in_chain: set[int] = set()
    for seq in prog.calls:
        if prog.nn_class(seq) != "Sequential" or _opaque(seq):
            continue
        owner = _owner_label(prog, seq)
        elems = seq.args
        for i, elem in enumerate(elems):
            kind = prog.nn_class(elem)
            if kind not in ("Linear", "Conv1d"):
                continue
            out = prog.bound(elem, kind).get(_SPECS[kind][1][0])
            if not _int_const(out) or _grouped(prog, elem, kind):
                continue
            norms = {"LayerNorm"} if kind == "Linear" else {"BatchNorm1d"}  # the norm of the channel axis
            members, j = [out], i + 1
            while j < len(elems) and prog.nn_class(elems[j]) in _ELEMENTWISE | norms:
                if prog.nn_class(elems[j]) in norms:
                    norm = elems[j].args[0] if elems[j].args else None
                    if not (_int_const(norm) and norm.value == out.value):
                        break
                    members.append(norm)
                j += 1
            if j < len(elems) and prog.nn_class(elems[j]) == kind and not _grouped(prog, elems[j], kind):
                inp = prog.bound(elems[j], kind).get(_SPECS[kind][0][0])
                if _int_const(inp) and inp.value == out.value:
                    members.append(inp)
                    in_chain.update(id(m) for m in members)
                    sites.append(_group_site(members, f"{owner}[{i}→{j}] width", elem.lineno))
    named = _named_constant_ids(prog)
    literal: dict[int, list[tuple[str, str, ast.Constant]]] = defaultdict(list)
    expressions: list[object] = []
    for call, ctor, param, role, node in _width_positions(prog):
        if _int_const(node):
            if id(node) not in in_chain:
                literal[node.value].append((ctor, role, node))
        else:
            expressions.append(_eval(node, prog.env_at(call)))
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
        stray = [n for n in ast.walk(prog.tree) if isinstance(n, ast.Constant) and _is_int(n.value)
                 and n.value == value and id(n) not in ids and id(n) not in named and id(n) not in in_chain]
        if stray:
            continue
        ctors = "→".join(dict.fromkeys(ctor for ctor, _, _ in items))
        sites.append(_group_site([node for _, _, node in items], f"{ctors} width", items[0][2].lineno))
    return sites


def _grouped(prog: _Program, call: ast.Call, kind: str) -> bool:
    """A grouped (e.g. depthwise) convolution: its channels must stay divisible by ``groups``."""
    groups = prog.bound(call, kind).get("groups")
    return kind != "Linear" and groups is not None and not (_int_const(groups) and groups.value == 1)


def _named_constant_ids(prog: _Program) -> set[int]:
    """Constants that give a name its value (defaults, ``NAME = 128``): their users reference the name."""
    ids: set[int] = set()
    for node in ast.walk(prog.tree):
        if isinstance(node, ast.arguments):
            ids.update(id(d) for d in [*node.defaults, *node.kw_defaults] if d is not None)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            ids.add(id(node.value))
    return ids


def _owner_label(prog: _Program, node: ast.AST) -> str:
    parent = prog.parent.get(id(node))
    if isinstance(parent, ast.Assign) and len(parent.targets) == 1:
        return ast.unparse(parent.targets[0])
    return f"nn.Sequential@{getattr(node, 'lineno', 0)}"


def _activation_sites(prog: _Program) -> list[_Site]:
    """Activation modules (``nn.GELU()``) and functions (``F.relu(x)``, ``torch.tanh(x)``)."""
    sites: list[_Site] = []
    module_index = function_index = 0
    for call in prog.calls:
        cls = prog.nn_class(call)
        if cls in ACT_MODULES:
            sites.append(_module_activation_site(prog, call, cls, module_index))
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
        sites.append(_function_activation_site(prog, call, function_index))
        function_index += 1
    return sites


def _module_activation_site(prog: _Program, call: ast.Call, cls: str, index: int) -> _Site:
    current = ACT_MODULES[cls]

    def assign(new: object) -> str | None:
        if new not in ACT_CLASSES or new == current:
            return None
        old = ast.unparse(call.func)
        if isinstance(call.func, ast.Attribute):
            call.func.attr = ACT_CLASSES[new]
        else:
            base = prog.nn_expr()
            if base is None:
                return None
            call.func = ast.Attribute(base, ACT_CLASSES[new], ast.Load())
        call.args, call.keywords = [], []
        return f"activation: {old}→{ast.unparse(call.func)}"

    return _Site("activation", f"act_module#{index}", f"nn.{cls}", current, call.lineno,
                 lambda rng: rng.choice([a for a in ACT_FUNCTIONS if a != current]), assign,
                 accepts=lambda v: v in ACT_CLASSES)


def _function_activation_site(prog: _Program, call: ast.Call, index: int) -> _Site:
    current = call.func.attr

    def assign(new: object) -> str | None:
        if new not in ACT_FUNCTIONS or new == current:
            return None
        expr = prog.function_expr(new)
        if expr is None:
            return None
        old = ast.unparse(call.func)
        call.func, call.keywords = expr, []
        return f"activation: {old}→{ast.unparse(expr)}"

    return _Site("activation", f"act_fn#{index}", ast.unparse(call.func), current, call.lineno,
                 lambda rng: rng.choice([a for a in ACT_FUNCTIONS if a != current]), assign,
                 accepts=lambda v: v in ACT_FUNCTIONS)


def _indexed(prog: _Program, call: ast.Call) -> bool:
    """Whether the container built by ``call`` may be indexed (an inserted layer would shift positions)."""
    parent = prog.parent.get(id(call))
    if isinstance(parent, ast.Assign) and len(parent.targets) == 1 and _is_self_attr(parent.targets[0]):
        target = ast.unparse(parent.targets[0])
        region = prog.class_of(call) or prog.tree
        return any(isinstance(n, ast.Subscript) and ast.unparse(n.value) == target for n in ast.walk(region))
    if isinstance(parent, (ast.Assign, ast.Return, ast.Call, ast.List, ast.Tuple, ast.keyword, ast.ListComp,
                           ast.GeneratorExp)):
        # it reaches its owner indirectly: refuse if anything named is indexed with a literal position
        return any(isinstance(n, ast.Subscript) and _literal_index(n.slice)
                   and (isinstance(n.value, ast.Name) or _is_self_attr(n.value)) for n in ast.walk(prog.tree))
    return True


def _literal_index(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return _int_const(node)


def _sequential_sites(prog: _Program) -> list[_Site]:
    """Insert or remove a shape-preserving layer inside an ``nn.Sequential(...)``."""
    sites: list[_Site] = []
    if prog.nn_expr() is None:
        return sites
    for index, seq in enumerate(c for c in prog.calls if prog.nn_class(c) == "Sequential"):
        if _opaque(seq) or seq.keywords or not seq.args or _indexed(prog, seq):
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
            sites.append(_Site("layer", f"sequential#{index}", owner, n, seq.lineno,
                               lambda rng, a=actions: (*rng.choice(a), rng.random()),
                               lambda action, s=seq, o=owner: _edit_sequential(prog, s, o, action)))
    return sites


def _element_kind(prog: _Program, elem: ast.AST) -> str:
    cls = prog.nn_class(elem)
    if cls == "Linear":
        return "linear"
    if cls in ("Conv1d", "Conv2d"):
        return "conv"
    if cls in _DROPOUTS:
        return "dropout"
    if cls in _ELEMENTWISE and cls != "Sigmoid":  # a sigmoid is a gate: never removed
        return "act"
    if cls in _NORMS:
        return "norm"
    return "other"


def _pick(choices: tuple, u: float) -> object:
    return choices[min(int(u * len(choices)), len(choices) - 1)]


def _edit_sequential(prog: _Program, seq: ast.Call, owner: str, action: object) -> str | None:
    what, i, u = action
    if what == "remove":
        removed = seq.args.pop(i)
        return f"layer: remove {ast.unparse(removed)} from {owner} at {i}"
    if what == "dropout":
        new = prog.nn_call("Dropout", ast.Constant(_pick((0.1, 0.2, 0.3), u)))
    elif what == "act":
        new = prog.nn_call(_pick(tuple(ACT_MODULES), u))
    else:
        linear = seq.args[i - 1] if what == "norm_after" else seq.args[i]
        width = prog.bound(linear, "Linear").get("out_features" if what == "norm_after" else "in_features")
        if width is None:
            return None
        new = prog.nn_call("LayerNorm", pyast.parse(ast.unparse(width), mode="eval").body)
    if new is None:
        return None
    seq.args.insert(i, new)
    return f"layer: insert {ast.unparse(new)} into {owner} at {i}"


def _wrap_sites(prog: _Program) -> list[_Site]:
    """``self.x = nn.Linear(...)`` used only as ``self.x(...)``: put a dropout or LayerNorm in front."""
    sites: list[_Site] = []
    if prog.nn_expr() is None:
        return sites
    for cls in prog.classes.values():
        init = _init_of(cls)
        if init is None:
            continue
        for stmt in init.body:
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                    and prog.nn_class(stmt.value) == "Linear"):
                continue
            target = stmt.targets[0]
            if not _is_self_attr(target):
                continue
            name = ast.unparse(target)
            uses = [n for n in ast.walk(cls)
                    if isinstance(n, ast.Attribute) and n is not target and ast.unparse(n) == name]
            if not uses or any(not (isinstance(prog.parent.get(id(n)), ast.Call) and prog.parent[id(n)].func is n)
                               for n in uses):
                continue
            width = prog.bound(stmt.value, "Linear").get("in_features")
            sites.append(_Site("layer", f"wrap:{name}", name, None, stmt.lineno,
                               lambda rng: (rng.choice(("dropout", "norm")), rng.random()),
                               lambda action, s=stmt, w=width, nm=name: _wrap(prog, s, w, nm, action)))
    return sites


def _wrap(prog: _Program, stmt: ast.Assign, width: ast.expr | None, name: str, action: object) -> str | None:
    what, u = action
    if what == "norm" and width is not None:
        first = prog.nn_call("LayerNorm", pyast.parse(ast.unparse(width), mode="eval").body)
    else:
        first = prog.nn_call("Dropout", ast.Constant(_pick((0.1, 0.2, 0.3), u)))
    seq = prog.nn_call("Sequential", first, stmt.value)
    if first is None or seq is None:
        return None
    stmt.value = seq
    return f"layer: insert {ast.unparse(first)} before {name} (wrapped in nn.Sequential)"


def _branch_sites(prog: _Program) -> list[_Site]:
    """Parallel conv branches built from a literal tuple of odd kernel sizes ``for k in (3, 5)``."""
    sites: list[_Site] = []
    for index, comp in enumerate(n for n in ast.walk(prog.tree) if isinstance(n, (ast.ListComp, ast.GeneratorExp))):
        if len(comp.generators) != 1 or not isinstance(comp.generators[0].target, ast.Name):
            continue
        var = comp.generators[0].target.id
        tup, named = _kernel_tuple(prog, comp.generators[0].iter)
        if tup is None or not tup.elts or any(not _int_const(e) or e.value % 2 != 1 for e in tup.elts):
            continue
        conv = next((c for c in ast.walk(comp.elt) if isinstance(c, ast.Call) and prog.ctor(c) == "Conv1d"), None)
        if conv is None:
            continue
        bound = prog.bound(conv, "Conv1d")
        kernel, padding, channels = bound.get("kernel_size"), bound.get("padding"), bound.get("out_channels")
        if not (isinstance(kernel, ast.Name) and kernel.id == var):
            continue
        same = isinstance(padding, ast.Constant) and padding.value == "same"
        halves = (isinstance(padding, ast.BinOp) and isinstance(padding.op, ast.FloorDiv)
                  and isinstance(padding.left, ast.Name) and padding.left.id == var
                  and isinstance(padding.right, ast.Constant) and padding.right.value == 2)
        if not (same or halves):
            continue
        label = ast.unparse(tup)
        sites.append(_Site("kernel", f"kernels#{index}", f"conv kernels {label}", label, tup.lineno,
                           lambda rng, t=tup: _kernel_element_action(t, rng),
                           lambda action, t=tup: _edit_kernel_element(t, action)))
        if not isinstance(channels, ast.Name):
            continue
        couplings = _couplings(prog, len(tup.elts), channels.id)
        counted = {named} if named else set()  # len(...) of these follows the branch count by itself
        holder = next((n for n in prog.up(comp) if isinstance(n, ast.Call)), None)
        if holder is not None and isinstance(prog.parent.get(id(holder)), ast.Assign):
            counted.add(ast.unparse(prog.parent[id(holder)].targets[0]))
        uses_len = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "len"
                       and len(n.args) == 1 and ast.unparse(n.args[0]) in counted for n in ast.walk(prog.tree))
        if not couplings and not uses_len:
            continue
        sites.append(_Site("branch", f"branches#{index}", f"conv branches {label}", len(tup.elts), tup.lineno,
                           lambda rng, t=tup: (rng.random() < 0.5 and len(t.elts) >= 2, rng.random()),
                           lambda action, t=tup, c=channels.id: _edit_branches(prog, t, c, action)))
    return sites


def _kernel_tuple(prog: _Program, it: ast.expr) -> tuple[ast.Tuple | ast.List | None, str | None]:
    if isinstance(it, (ast.Tuple, ast.List)):
        return it, None
    if isinstance(it, ast.Name):
        fn = prog.function_of(it)
        for scope in (fn, prog.tree):
            if scope is None:
                continue
            if isinstance(scope, ast.FunctionDef):
                default = _defaults(scope).get(it.id)
                if isinstance(default, (ast.Tuple, ast.List)) and not prog.overridden(scope, it.id):
                    return default, it.id
            for stmt in scope.body:
                if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                        and stmt.targets[0].id == it.id and isinstance(stmt.value, (ast.Tuple, ast.List))):
                    return stmt.value, it.id
    return None, None


def _couplings(prog: _Program, count: int, channels: str) -> list[ast.Constant]:
    """The ``count`` constants of ``count * channels`` (either order) that size a layer's input or a
    norm: the concatenation of the branches."""
    found = []
    for _, _, _, role, node in _width_positions(prog):
        if role in ("width_in", "width_through") and isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            for a, b in ((node.left, node.right), (node.right, node.left)):
                if _int_const(a) and a.value == count and isinstance(b, ast.Name) and b.id == channels:
                    found.append(a)
    return found


def _kernel_element_action(tup: ast.Tuple | ast.List, rng: random.Random) -> tuple[int, int] | None:
    taken = tuple(e.value for e in tup.elts)
    index = rng.randrange(len(taken))
    new = _new_kernel(taken[index], rng, taken)
    return None if new is None else (index, new)


def _edit_kernel_element(tup: ast.Tuple | ast.List, action: object) -> str | None:
    if action is None:
        return None
    index, new = action
    old = ast.unparse(tup)
    tup.elts[index].value = new
    return f"kernel: conv kernels {old}→{ast.unparse(tup)}"


def _edit_branches(prog: _Program, tup: ast.Tuple | ast.List, channels: str, action: object) -> str | None:
    remove, u = action
    old, count = ast.unparse(tup), len(tup.elts)
    couplings = _couplings(prog, count, channels)
    if remove:
        tup.elts.pop(min(int(u * count), count - 1))
    else:
        taken = {e.value for e in tup.elts}
        options = [k for k in KERNEL_CHOICES if k not in taken]
        if not options:
            return None
        tup.elts.append(ast.Constant(_pick(tuple(options), u)))
    for const in couplings:
        const.value = len(tup.elts)
    note = f" ({count} * {channels}→{len(tup.elts)} * {channels})" if couplings else ""
    return f"branch: conv kernels {old}→{ast.unparse(tup)}{note}"


def _stack_sites(prog: _Program) -> list[_Site]:
    """``range(n)`` literal that sizes a stack of blocks applied one after another (n >= 2)."""
    sites = []
    for call in prog.calls:
        if id(call) in prog.stacking_ranges and _int_const(call.args[0]) and call.args[0].value >= 2:
            node = call.args[0]
            label = f"blocks {ast.unparse(call)}"
            sites.append(_Site("depth", f"stack@{call.lineno}", label, node.value, call.lineno,
                               lambda rng, v=node.value: _new_depth(v, rng), _set_const(node, label, "depth")))
    return sites


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _violations(prog: _Program) -> list[str]:
    """Constraint breaches visible statically (messages carry no line numbers, to compare programs)."""
    out: list[str] = []
    for call in prog.calls:
        ctor = prog.ctor(call)
        if ctor is None:
            continue
        env = prog.env_at(call)
        bound = prog.bound(call, ctor)
        values = {param: _eval(node, env) for param, node in bound.items()}
        for param, role in _SPECS[ctor]:
            value = values.get(param)
            if value is None or role is None:
                continue
            sized = role.startswith("width") or role in ("depth", "heads")
            bad_size = sized and not (_is_int(value) and value >= 1)
            bad_rate = role == "dropout" and not (_is_num(value) and 0 <= value < 1)
            if bad_size or bad_rate:
                out.append(f"{ctor}.{param}={value!r}")
        if ctor in _ATTENTION:
            width, heads = _attention_width(prog, call, ctor), values.get(_ATTENTION[ctor][1])
            if _is_int(heads) and heads >= 1 and width % heads:
                out.append(f"{ctor}: d_model {width} not divisible by {heads} heads")
        if ctor == "GroupNorm":
            groups, channels = values.get("num_groups"), values.get("num_channels")
            if _is_int(groups) and _is_int(channels) and groups >= 1 and channels % groups:
                out.append(f"GroupNorm: {channels} channels not divisible by {groups} groups")
    for seq in prog.calls:
        if prog.nn_class(seq) == "Sequential":
            out += _sequential_mismatches(prog, seq)
    for node in ast.walk(prog.tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.FloorDiv):
            env = prog.env_at(node)
            a, b = _eval(node.left, env), _eval(node.right, env)
            if _is_int(a) and _is_int(b) and b != 0 and a % b:
                out.append(f"inexact {ast.unparse(node)}")
    return sorted(out)


def _sequential_mismatches(prog: _Program, seq: ast.Call) -> list[str]:
    """Adjacent layers of an ``nn.Sequential`` whose feature widths (last axis) do not meet."""
    out: list[str] = []
    env = prog.env_at(seq)
    width: object = None  # the known width flowing out of the previous element
    for elem in seq.args:
        cls = prog.nn_class(elem)
        if cls == "Linear":
            bound = prog.bound(elem, "Linear")
            needed = _eval(bound.get("in_features"), env)
            if _is_int(width) and _is_int(needed) and needed != width:
                out.append(f"Sequential: Linear({needed}, ...) after width {width}")
            width = _eval(bound.get("out_features"), env)
        elif cls == "LayerNorm":
            needed = _eval(elem.args[0] if elem.args else None, env)
            if _is_int(width) and _is_int(needed) and needed != width:
                out.append(f"Sequential: LayerNorm({needed}) after width {width}")
            width = needed if _is_int(needed) else width
        elif cls not in _ELEMENTWISE:
            width = None
    return out


def _entry_signature(tree: ast.Module) -> str | None:
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == ENTRY_POINT), None)
    return None if fn is None else ast.dump(fn.args)


def _program_hash(source: str) -> str:
    return CandidateProgram(name="candidate", source=source).program_hash()


def _parse(source: str, role: str = "parent") -> _Program:
    try:
        prog = _Program(source)
    except SyntaxError as exc:
        raise OperatorError(f"{role} does not parse: line {exc.lineno}: {exc.msg}") from exc
    if _entry_signature(prog.tree) is None:
        raise OperatorError(f"{role} defines no top-level {ENTRY_POINT}")
    return prog


def _reject_reason(child: str, parent: _Program, parent_hashes: list[str]) -> str | None:
    """Why ``child`` is not a valid child of ``parent`` (None: it is)."""
    report = check_source(child)
    if not report.ok:
        return "static check: " + "; ".join(report.reasons)
    try:
        prog = _Program(child)
    except SyntaxError as exc:  # pragma: no cover - unparse output always parses
        return f"does not parse: {exc.msg}"
    if _entry_signature(prog.tree) != _entry_signature(parent.tree):
        return f"{ENTRY_POINT} changed"
    if _program_hash(child) in parent_hashes:
        return "same program as a parent"
    new = set(_violations(prog)) - set(_violations(parent))
    if new:
        return "breaks " + "; ".join(sorted(new))
    return None


# --------------------------------------------------------------------------------------------
# Public operators
# --------------------------------------------------------------------------------------------


def hyperparameter_slots(source: str) -> list[Slot]:
    """Every mutable place of a program: hyper-parameter values and structural edit sites."""
    return [site.slot() for site in _collect_sites(_parse(source))]


def mutation_kinds(source: str) -> list[str]:
    """The kinds of mutation that apply to a program (``width``, ``depth``, ``heads`` ...)."""
    kinds = {site.kind for site in _collect_sites(_parse(source))}
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
    parent = _parse(source)
    if not _collect_sites(parent):
        raise OperatorError("nothing to mutate: no recognised hyper-parameter or layer site")
    parent_hashes = [_program_hash(source)]
    reason = "no attempt made"
    for _ in range(max(1, attempts)):
        current, edits, kinds, touched = source, [], [], set()
        for _ in range(rng.randint(1, max(1, max_edits))):
            prog = _Program(current)
            sites = [s for s in _collect_sites(prog) if s.key not in touched]
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
        reason = _reject_reason(current, parent, parent_hashes) or ""
        if not reason:
            return AstEdit(source=current, description="; ".join(edits), kinds=sorted(set(kinds)))
    raise OperatorError(f"no valid mutation after {attempts} attempts (last: {reason})")


def _crossover(source_a: str, source_b: str, rng: random.Random, attempts: int) -> AstEdit:
    parent_a, parent_b = _parse(source_a, "parent A"), _parse(source_b, "parent B")
    hashes = [_program_hash(source_a), _program_hash(source_b)]
    slots_b = {s.key: s for s in _collect_sites(parent_b) if s.crossable}
    shared = [s.key for s in _collect_sites(parent_a)
              if s.crossable and s.key in slots_b and s.kind == slots_b[s.key].kind
              and s.value != slots_b[s.key].value]
    reason = "no attempt made"
    for _ in range(max(1, attempts)):
        prog = _Program(source_a)
        sites = _collect_sites(prog)
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
                raise OperatorError("parents share no differing hyper-parameter slot, and B has no activation, "
                                    "dropout rate, width, depth or head count that A could take")
            if not edits:
                reason = "nothing transplanted"
                continue
            description = ("crossover (no shared slot differs: different architectures; A takes B's values by kind): "
                           + "; ".join(edits))
        child = ast.unparse(ast.fix_missing_locations(prog.tree)) + "\n"
        reason = _reject_reason(child, parent_a, hashes) or ""
        if not reason:
            return AstEdit(source=child, description=description, kinds=["crossover"])
    raise OperatorError(f"no valid crossover after {attempts} attempts (last: {reason})")


def _uniform(prog: _Program, sites: list[_Site], slots_b: dict[str, _Site], shared: list[str],
             rng: random.Random) -> tuple[list[str], list[str]]:
    """Each shared slot takes B's value with probability 0.5; at least one does, and one keeps A's."""
    by_key = {s.key: s for s in sites}
    take = [rng.random() < 0.5 for _ in shared]
    if not any(take):
        take[rng.randrange(len(take))] = True
    if len(shared) >= 2 and all(take):
        take[rng.randrange(len(take))] = False
    edits, kept = [], []
    for key, chosen in zip(shared, take):
        site, value = by_key.get(key), slots_b[key].value
        if site is None:
            continue
        if not chosen or not site.accepts(value):
            kept.append(f"{site.label}={_fmt(site.value)}")
            continue
        description = site.assign(value)
        if description:
            edits.append(description.split(": ", 1)[-1])
    return edits, kept


def _transplant(sites: list[_Site], parent_b: _Program, rng: random.Random) -> list[str] | None:
    """A's sites take values B uses for the same kind of slot (activations, dropout rates, widths, depths,
    heads), each with probability 0.5; None when B has no such value that A lacks."""
    pools: dict[str, set[object]] = defaultdict(set)
    for site in _collect_sites(parent_b):
        if site.kind in _TRANSPLANT_KINDS and site.value is not None and not isinstance(site.value, bool):
            pools[site.kind].add(site.value)
    options = []
    for site in sites:
        if site.kind not in _TRANSPLANT_KINDS or site.value is None:
            continue
        values = sorted((v for v in pools[site.kind] if v != site.value and site.accepts(v)), key=_fmt)
        if values:
            options.append((site, values))
    if not options:
        return None
    chosen = [rng.random() < 0.5 for _ in options]
    if not any(chosen):
        chosen[rng.randrange(len(chosen))] = True
    edits = []
    for (site, values), take in zip(options, chosen):
        if take:
            description = site.assign(rng.choice(values))
            if description:
                edits.append(description)
    return edits
