"""Static facts about one parsed program: import aliases, scopes, constant values, layer constructors and
where a named value ends up (its roles)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import cast

from evoformer import pyast
from evoformer.candidates.program import ENTRY_POINT

from .specs import ATTENTION, DEFAULT_INPUT_DIM, DEFAULT_NUM_CLASSES, SPECS, TORCH_ACT_FUNCTIONS
from .values import (
    bind,
    defaults,
    evaluate,
    init_of,
    is_int,
    is_name_call,
    is_self_attr,
    opaque,
    param_names,
    role_names,
    single_assign,
)


class Program:
    """A parsed program with its import aliases, scopes, constant values and layer constructors."""

    def __init__(self, source: str) -> None:
        self.tree = cast(ast.Module, pyast.parse(source))  # mode "exec" always parses to a Module
        self.parent: dict[int, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parent[id(child)] = node
        self.classes = {n.name: n for n in self.tree.body if isinstance(n, ast.ClassDef)}
        self.functions = {n.name: n for n in self.tree.body if isinstance(n, ast.FunctionDef)}
        self.calls = sorted(
            (n for n in ast.walk(self.tree) if isinstance(n, ast.Call)), key=lambda n: (n.lineno, n.col_offset)
        )
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
        if name in SPECS:
            return name
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == "dropout" and ast.unparse(func.value) in self.f_bases:
            return "functional.dropout"
        return None

    def bound(self, call: ast.Call, ctor: str) -> dict[str, ast.expr]:
        return bind(call, [p for p, _ in SPECS[ctor]])

    def ctor_calls(self) -> Iterator[tuple[ast.Call, str, dict[str, ast.expr]]]:
        """Every recognised layer constructor call, in source order, with its spec name and bound arguments."""
        for call in self.calls:
            ctor = self.ctor(call)
            if ctor is not None:
                yield call, ctor, self.bound(call, ctor)

    def attention_width(self, call: ast.Call, ctor: str) -> int:
        """``d_model`` of an attention layer; the default encoder's width when it is not known statically."""
        value = evaluate(self.bound(call, ctor).get(ATTENTION[ctor][0]), self.env_at(call))
        return value if is_int(value) and value > 0 else DEFAULT_INPUT_DIM

    def width_args(self) -> Iterator[tuple[ast.Call, str, str, str, ast.expr]]:
        """Every width argument of a layer constructor: call, constructor, parameter, role, expression."""
        for call, ctor, bound in self.ctor_calls():
            for param, role in SPECS[ctor]:
                if role and role.startswith("width") and param in bound:
                    yield call, ctor, param, role, bound[param]

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
            init = init_of(self.classes[name])
            return (init, param_names(init, method=True)) if init else None
        if name in self.functions and name != ENTRY_POINT:
            fn = self.functions[name]
            return fn, param_names(fn, method=False)
        return None

    def owner_name(self, fn: ast.FunctionDef) -> str | None:
        """The name a call uses to reach ``fn``: its class for ``__init__``, else its own name."""
        cls = self.class_of(fn)
        if cls is not None:
            return cls.name if fn.name == "__init__" and cls.name in self.classes else None
        return fn.name if self.functions.get(fn.name) is fn else None

    def owner_calls(self, fn: ast.FunctionDef) -> Iterator[tuple[ast.Call, list[str]]] | None:
        """The calls that reach ``fn`` with its parameter names (None: it is not reachable by name)."""
        owner = self.owner_name(fn)
        if owner is None:
            return None
        params = param_names(fn, method=self.class_of(fn) is not None)
        return ((call, params) for call in self.calls if is_name_call(call, owner))

    def overridden(self, fn: ast.FunctionDef, param: str) -> bool:
        """Some call passes ``param`` explicitly (so its default is not what runs)."""
        calls = self.owner_calls(fn)
        return calls is None or any(opaque(call) or param in bind(call, params) for call, params in calls)

    # -- constant environments ---------------------------------------------------------------
    def _assign_into(self, stmt: ast.stmt, env: dict[str, object]) -> None:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target, value = stmt.target, stmt.value
        else:
            return
        if isinstance(target, ast.Name):
            env[target.id] = evaluate(value, env)
        elif is_self_attr(target):
            env[f"self.{target.attr}"] = evaluate(value, env)

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
            init = init_of(cls)
            if init is not None:
                env.update({k: v for k, v in self.env(init).items() if k.startswith("self.")})
        given = defaults(fn)
        for index, name in enumerate(param_names(fn, method=cls is not None)):
            if name in given:
                env[name] = evaluate(given[name], self.module_env)
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
        calls = self.owner_calls(fn)
        if calls is None:
            return None
        values = []
        for call, params in calls:
            bound = bind(call, params)
            if name not in bound:
                return None
            values.append(evaluate(bound[name], self.env(self.function_of(call))))
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
            if not (is_name_call(it, "range") and len(it.args) == 1):
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
            if not (
                isinstance(loop, ast.For) and isinstance(loop.target, ast.Name) and ast.unparse(loop.iter) == target
            ):
                continue
            for stmt in ast.walk(loop):
                out = single_assign(stmt)
                if (
                    isinstance(stmt, ast.Assign)
                    and isinstance(out, ast.Name)
                    and is_name_call(stmt.value, loop.target.id)
                    and stmt.value.args
                    and isinstance(stmt.value.args[0], ast.Name)
                    and stmt.value.args[0].id == out.id
                ):
                    return True
        return False

    def aliases(self, region: ast.AST, name: str) -> tuple[set[str], ast.AST]:
        """``name`` and the ``self.x = name`` attributes it is stored in, with the region their uses are in
        (the whole class once it is stored on ``self``)."""
        names = {name} | {
            f"self.{target.attr}"
            for n in ast.walk(region)
            if isinstance(n, ast.Assign)
            and is_self_attr(target := single_assign(n))
            and isinstance(n.value, ast.Name)
            and n.value.id == name
        }
        cls = self.class_of(region) if len(names) > 1 and isinstance(region, ast.FunctionDef) else None
        return names, cls or region

    def passed_on(self, call: ast.Call, names: set[str]) -> Iterator[tuple[ast.FunctionDef, str]]:
        """The parameters of a user-defined class or function that ``call`` passes one of ``names`` to."""
        target = self.callee(call)
        if target is not None:
            fn, params = target
            for param, node in bind(call, params).items():
                if names & role_names(node):
                    yield fn, param

    def roles(self, region: ast.AST, name: str, depth: int = 0) -> set[str]:
        """Where the value of ``name`` (visible in ``region``) ends up: width, heads, depth ..."""
        copied = any(
            isinstance(n, ast.Assign)
            and (target := single_assign(n)) is not None
            and not is_self_attr(target)
            and isinstance(n.value, ast.Name)
            and n.value.id == name
            for n in ast.walk(region)
        )
        if copied:  # copied to another local: stop here
            return {"unknown"}
        names, scan = self.aliases(region, name)
        roles: set[str] = set()
        for call in self.calls:
            if not self.inside(call, scan):
                continue
            ctor = self.ctor(call)
            if ctor is not None:
                bound = self.bound(call, ctor)
                for param, role in SPECS[ctor]:
                    node = bound.get(param)
                    if node is not None and names & role_names(node):
                        roles.add(role or "other")
                continue
            if self.callee(call) is not None and depth < 3:
                for fn, param in self.passed_on(call, names):
                    roles |= self.roles(fn, param, depth + 1)
                continue
            if id(call) in self.stacking_ranges and names & role_names(call.args[0]):
                roles.add("depth_stack")
            elif is_name_call(call, "range") and any(names & role_names(arg) for arg in call.args):
                roles.add("other")
        return roles
