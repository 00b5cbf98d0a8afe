"""The canonical form of a program, to tell a near-copy from a real change.

Contract: :func:`canonical_tree` returns a source's AST without bare string statements (docstrings and
other no-ops, wherever they stand: after a prelude the program's docstring is not the module's first
statement; an emptied body gets ``pass``) and with every identifier the program binds renamed by
order of first appearance: functions, classes, parameters (``*args``, ``**kwargs``, keyword-only),
variables (assignment, ``for``/``with``/``except``/comprehension targets, walrus), class-body names
and attributes stored on ``self``. Programs differing only in docstrings, comments, formatting and
chosen names give equal trees. Kept: what the program does not bind (builtins, imports and their
attributes such as ``nn.Linear``, keywords in calls to code it does not define such as
``batch_first=True``), ``keep`` (the entry point), dunder names, and every constant.

Module-level, class-body and ``self`` attribute names share one namespace (``g<n>``); a function's
parameters (first, in order) and assigned names are its locals (``v<depth>_<n>``); a keyword in a call
to the program's own function, class or ``self`` method becomes ``p<i>``, its parameter's position.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterable

from evoformer import pyast

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_DEFS = (*_FUNCTIONS, ast.ClassDef)


def canonical_tree(source: str, keep: Collection[str] = ()) -> ast.Module:
    """The canonical AST of ``source`` (see the module docstring); raises ``SyntaxError`` as ``ast.parse`` does."""
    module = pyast.parse(source)
    _strip_strings(module)
    _Canonicaliser(module, frozenset(keep)).visit(module)
    return module


def _args(args: ast.arguments) -> list[ast.arg]:
    """Parameters in signature order: positional, ``*args``, keyword-only, ``**kwargs``."""
    return [a for a in [*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg] if a is not None]


def _bound_in(body: list[ast.stmt]) -> tuple[set[str], set[str]]:
    """Names a block binds itself (of nested functions and classes: their names), and its global/nonlocal ones."""
    bound: set[str] = set()
    declared: set[str] = set()
    todo: list[ast.AST | None] = list(body)
    while todo:
        node = todo.pop()
        if node is None:  # an absent keyword-only default
            continue
        if isinstance(node, _DEFS):
            bound.add(node.name)
            todo += node.decorator_list
            todo += [*node.args.defaults, *node.args.kw_defaults] if isinstance(node, _FUNCTIONS) else node.bases
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            declared.update(node.names)
        todo.extend(ast.iter_child_nodes(node))
    return bound, declared


def _strip_strings(module: ast.Module) -> None:
    """Drop every statement that is a bare string (docstrings and other no-ops); an emptied body gets ``pass``."""
    for node in list(ast.walk(module)):
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                body[:] = [s for s in body if not _is_string(s)] or [ast.Pass()]


def _is_string(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


class _Canonicaliser(ast.NodeVisitor):
    """Renames in place; the sets of bound names are found first, the numbering follows the visit."""

    def __init__(self, module: ast.Module, keep: frozenset[str]) -> None:
        imports = [a for node in ast.walk(module) if isinstance(node, ast.Import | ast.ImportFrom) for a in node.names]
        self.skip = {(a.asname or a.name).split(".")[0] for a in imports} | keep
        module_bound, _ = _bound_in(module.body)
        declared_global, class_bound, self_attrs = set[str](), set[str](), set[str]()
        self.signatures: dict[str, list[str]] = {}  # module-level function or class -> its parameters
        self.methods: dict[str, list[str]] = {}  # method -> its parameters
        top = {id(node) for node in module.body}
        for node in ast.walk(module):
            if isinstance(node, _FUNCTIONS) and id(node) in top:
                self.signatures[node.name] = [a.arg for a in _args(node.args)]
            elif isinstance(node, ast.ClassDef):
                class_bound |= _bound_in(node.body)[0]
                for item in node.body:
                    if isinstance(item, _FUNCTIONS):
                        self.methods[item.name] = [a.arg for a in _args(item.args)]
                        if item.name == "__init__" and id(node) in top:
                            self.signatures[node.name] = self.methods[item.name]
            elif isinstance(node, ast.Global):
                declared_global.update(node.names)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _is_self(node.value):
                self_attrs.add(node.attr)
        self.globals = self._renamable(module_bound | declared_global)
        self.class_names = self._renamable(class_bound)
        self.attrs = self._renamable(class_bound | self_attrs)
        self.names: dict[str, str] = {}
        self.scopes: list[tuple[set[str], dict[str, str]]] = []
        self.in_class = False

    def _renamable(self, names: set[str]) -> set[str]:
        return {n for n in names if n not in self.skip and not (n.startswith("__") and n.endswith("__"))}

    def _global(self, name: str) -> str:
        return self.names.setdefault(name, f"g{len(self.names)}")

    def _resolve(self, name: str) -> str:
        if self.in_class and name in self.class_names:
            return self._global(name)
        for depth in range(len(self.scopes) - 1, -1, -1):
            local, names = self.scopes[depth]
            if name in local:
                return names.setdefault(name, f"v{depth}_{len(names)}")
        return self._global(name) if name in self.globals else name

    def _scoped(self, args: ast.arguments, body: list[ast.AST], extra: set[str]) -> None:
        """Visit ``body`` in a new scope whose locals are the parameters (numbered first) and ``extra``."""
        self.scopes.append((self._renamable({a.arg for a in _args(args)} | extra), {}))
        outer, self.in_class = self.in_class, False
        for a in _args(args):
            a.arg = self._resolve(a.arg)
        self._visit_all(body)
        self.in_class = outer
        self.scopes.pop()

    def _visit_all(self, nodes: Iterable[ast.AST | None]) -> None:
        for node in nodes:
            if node is not None:
                self.visit(node)

    def _outer_parts(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        """Decorators, defaults, annotations and bases: evaluated in the enclosing scope."""
        self._visit_all(node.decorator_list)
        if isinstance(node, ast.ClassDef):
            self._visit_all([*node.bases, *node.keywords])
        else:
            self._visit_all([*node.args.defaults, *node.args.kw_defaults, node.returns])
            self._visit_all(a.annotation for a in _args(node.args))
        node.name = self._resolve(node.name)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._outer_parts(node)
        bound, declared = _bound_in(node.body)
        self._scoped(node.args, list(node.body), bound - declared)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_all([*node.args.defaults, *node.args.kw_defaults])
        self._scoped(node.args, [node.body], set())

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._outer_parts(node)
        outer, self.in_class = self.in_class, True
        self._visit_all(node.body)
        self.in_class = outer

    def visit_Name(self, node: ast.Name) -> None:
        node.id = self._resolve(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if _is_self(node.value) and node.attr in self.attrs:
            node.attr = self._global(node.attr)
        self.visit(node.value)

    def visit_Call(self, node: ast.Call) -> None:
        func, params = node.func, None
        if isinstance(func, ast.Name):
            params = self.signatures.get(func.id)
        elif isinstance(func, ast.Attribute) and _is_self(func.value):
            params = self.methods.get(func.attr)
        for keyword in node.keywords:
            if params and keyword.arg in params:
                keyword.arg = f"p{params.index(keyword.arg)}"
        self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            node.name = self._resolve(node.name)
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        node.names = [self._global(n) if n in self.globals else n for n in node.names]

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        node.names = [self._resolve(n) for n in node.names]


def _is_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"
