"""Small static facts about AST nodes: constant types, call bindings, constant folding, parameters."""

from __future__ import annotations

import ast
from typing import TypeGuard, TypeVar, cast

T = TypeVar("T")


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_num(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_size(value: object) -> TypeGuard[int]:
    """A legal width, depth or head count: a positive integer."""
    return is_int(value) and value >= 1


def is_rate(value: object) -> TypeGuard[int | float]:
    """A legal dropout rate."""
    return is_num(value) and 0 <= value < 1


def in_bounds(value: object, bounds: tuple[int, int]) -> TypeGuard[int]:
    return is_int(value) and bounds[0] <= value <= bounds[1]


def int_const(node: ast.AST | None) -> TypeGuard[ast.Constant]:
    return isinstance(node, ast.Constant) and is_int(node.value)


def num_const(node: ast.AST | None) -> TypeGuard[ast.Constant]:
    return isinstance(node, ast.Constant) and is_num(node.value)


def fmt(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def pick(choices: tuple[T, ...], u: float) -> T:
    """The element of ``choices`` that a uniform draw ``u`` in [0, 1) falls on."""
    return choices[min(int(u * len(choices)), len(choices) - 1)]


def is_self_attr(node: ast.AST | None) -> TypeGuard[ast.Attribute]:
    """``self.x``."""
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"


def is_name_call(node: ast.AST | None, name: str) -> TypeGuard[ast.Call]:
    """``name(...)``."""
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name


def single_assign(stmt: ast.AST | None) -> ast.expr | None:
    """The one target of ``target = value`` (None for any other statement)."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        return stmt.targets[0]
    return None


def bind(call: ast.Call, params: list[str]) -> dict[str, ast.expr]:
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


def opaque(call: ast.Call) -> bool:
    """The call passes ``*args`` or ``**kwargs``: its bindings cannot be known."""
    return any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords)


_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Div: lambda a, b: a / b,
    ast.Mod: lambda a, b: a % b,
}


def evaluate(node: ast.AST | None, env: dict[str, object]) -> object:
    """Value of a small constant expression, or None when unknown."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env.get(node.id)
    if is_self_attr(node):
        return env.get(f"self.{node.attr}")
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [evaluate(e, env) for e in node.elts]
        return None if any(i is None for i in items) else tuple(items)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = evaluate(node.operand, env)
        return -value if is_num(value) else None
    if isinstance(node, ast.BinOp):
        left, right = evaluate(node.left, env), evaluate(node.right, env)
        op = _BINARY.get(type(node.op))
        if op is None or not (is_num(left) and is_num(right)):
            return None
        try:
            return op(left, right)
        except ZeroDivisionError:
            return None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        return _builtin(node.func.id, [evaluate(a, env) for a in node.args])
    return None


def _builtin(name: str, args: list[object]) -> object:
    """``len``, ``int``, ``max`` and ``min`` of known values."""
    if any(a is None for a in args):
        return None
    if name == "len" and len(args) == 1 and isinstance(args[0], tuple):
        return len(args[0])
    if name == "int" and len(args) == 1 and is_num(args[0]):
        return int(args[0])
    if name in ("max", "min") and args and all(is_num(a) for a in args):
        nums = cast(list[int | float], args)  # every one is a number: checked just above
        return max(nums) if name == "max" else min(nums)
    return None


def role_names(expr: ast.AST | None) -> set[str]:
    """Names (and ``self.x``) whose value scales ``expr``: operands of + - * and dividends, not divisors."""
    names: set[str] = set()

    def visit(node: ast.AST | None) -> None:
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif is_self_attr(node):
            names.add(f"self.{node.attr}")
        elif isinstance(node, ast.BinOp):
            visit(node.left)
            if not isinstance(node.op, (ast.FloorDiv, ast.Div, ast.Mod)):
                visit(node.right)
        elif isinstance(node, ast.UnaryOp):
            visit(node.operand)

    visit(expr)
    return names


def init_of(cls: ast.ClassDef) -> ast.FunctionDef | None:
    return next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)


def param_names(fn: ast.FunctionDef, method: bool) -> list[str]:
    names = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]
    return names[1:] if method and names else names


def defaults(fn: ast.FunctionDef) -> dict[str, ast.expr]:
    positional = [*fn.args.posonlyargs, *fn.args.args]
    defaulted = positional[len(positional) - len(fn.args.defaults) :]
    out = {a.arg: d for a, d in zip(defaulted, fn.args.defaults, strict=False)}
    out.update({a.arg: d for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults, strict=False) if d is not None})
    return out
