"""Static checks run on a candidate's source before anything executes.

They are a first filter, not a security boundary: ``torch.os.environ`` reaches ``os`` without an
import, so the sandbox must hold on its own.
"""

from __future__ import annotations

import ast

from pydantic import BaseModel, ConfigDict, Field

from evoformer import pyast
from evoformer.candidates.program import ENTRY_POINT
from evoformer.fields import factory_field, form_schema

DEFAULT_ALLOWED_IMPORTS = [
    "torch",
    "torch.nn",
    "torch.nn.functional",
    "math",
    "typing",
    "dataclasses",
    "functools",
    "collections",
    "itertools",
]
FORBIDDEN_NAMES = frozenset(
    {"open", "exec", "eval", "compile", "__import__", "globals", "locals", "vars", "breakpoint", "input"}
)
FORBIDDEN_MODULES = frozenset(
    {
        "os",
        "sys",
        "subprocess",
        "socket",
        "shutil",
        "pathlib",
        "importlib",
        "ctypes",
        "pickle",
        "marshal",
        "threading",
        "multiprocessing",
    }
)


_ATTRIBUTE_FUNCTIONS = frozenset({"getattr", "setattr", "delattr", "hasattr"})


class StaticCheckConfig(BaseModel):
    """What a candidate may contain."""

    model_config = ConfigDict(json_schema_extra=form_schema())

    allowed_imports: list[str] = factory_field(
        lambda: list(DEFAULT_ALLOWED_IMPORTS),
        title="Allowed imports",
        description="Modules a candidate may import (torch, math...); any other import fails the check.",
    )
    max_source_bytes: int = Field(
        default=64_000, ge=100, title="Largest program (bytes)", description="Largest candidate source accepted."
    )


class StaticReport(BaseModel):
    ok: bool
    reasons: list[str]


def check_source(source: str, config: StaticCheckConfig | None = None, require_entry: bool = True) -> StaticReport:
    """Return every violation found in ``source`` (empty when the program may run).

    ``require_entry=False`` checks a fragment such as the prelude, which defines no entry point.
    """
    config = config or StaticCheckConfig()
    size = len(source.encode("utf-8"))
    if size > config.max_source_bytes:
        return StaticReport(ok=False, reasons=[f"source is {size} bytes, over the limit of {config.max_source_bytes}"])
    try:
        tree = pyast.parse(source)
    except SyntaxError as exc:
        return StaticReport(ok=False, reasons=[f"syntax error at line {exc.lineno}: {exc.msg}"])
    visitor = _Visitor(set(config.allowed_imports))
    visitor.visit(tree)
    reasons = visitor.reasons
    defines_entry = any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == ENTRY_POINT for node in tree.body
    )
    if require_entry and not defines_entry:
        reasons.append(f"no top-level function {ENTRY_POINT}(input_dim, num_classes)")
    return StaticReport(ok=not reasons, reasons=reasons)


class _Visitor(ast.NodeVisitor):
    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed
        self.reasons: list[str] = []
        self.called: set[int] = set()  # Name nodes that are the function of a call

    def _flag(self, node: ast.AST, message: str) -> None:
        self.reasons.append(f"line {getattr(node, 'lineno', '?')}: {message}")

    def _check_module(self, node: ast.AST, module: str) -> None:
        root = module.split(".")[0]
        if root in FORBIDDEN_MODULES:
            self._flag(node, f"module {module!r} is forbidden")
        elif module not in self.allowed:
            self._flag(node, f"import of {module!r} is not in the allow-list")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(node, alias.name)
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            self._flag(node, "relative imports are forbidden")
        module = node.module or ""
        self._check_module(node, module)
        for alias in node.names:
            full = f"{module}.{alias.name}"
            if alias.name in FORBIDDEN_MODULES or alias.name in FORBIDDEN_NAMES:
                self._flag(node, f"import of {full!r} is forbidden")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in _ATTRIBUTE_FUNCTIONS and id(node) not in self.called:
            self._flag(node, f"{node.id} may only be called directly, with a literal name")
        elif node.id in FORBIDDEN_NAMES:
            self._flag(node, f"name {node.id!r} is forbidden")
        elif node.id in FORBIDDEN_MODULES:
            self._flag(node, f"module name {node.id!r} is forbidden")
        elif node.id.startswith("__") and node.id.endswith("__") and node.id not in {"__name__"}:
            self._flag(node, f"dunder name {node.id!r} is forbidden")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if _is_super_init(node):
            pass
        elif node.attr.startswith("__") and node.attr.endswith("__"):
            self._flag(node, f"access to dunder attribute {node.attr!r} is forbidden")
        elif node.attr in FORBIDDEN_MODULES:
            self._flag(node, f"access to attribute {node.attr!r} (a forbidden module) is forbidden")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name):
            self.called.add(id(node.func))
        if isinstance(node.func, ast.Name) and node.func.id in _ATTRIBUTE_FUNCTIONS:
            if len(node.args) < 2:
                self._flag(node, f"{node.func.id} without a literal attribute name is forbidden")
            else:
                name = node.args[1]
                if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                    self._flag(node, f"{node.func.id} with a computed attribute name is forbidden")
                elif name.value.startswith("__"):
                    self._flag(node, f"{node.func.id} with dunder name {name.value!r} is forbidden")
        self.generic_visit(node)


def _is_super_init(node: ast.Attribute) -> bool:
    """``super().__init__``: the one dunder access every ``nn.Module`` needs."""
    value = node.value
    return (
        node.attr == "__init__"
        and isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "super"
    )
