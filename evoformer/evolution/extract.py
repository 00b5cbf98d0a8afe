"""Pull one candidate program out of an LLM reply: fences, prose around code, several blocks."""

from __future__ import annotations

import ast
import builtins
import re
from typing import cast

from evoformer import pyast
from evoformer.candidates.program import ENTRY_POINT

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
_CODE_LANGS = {"", "python", "py", "python3", "pytorch"}
_CODE_START = re.compile(r"^(import |from |class |def |@|#|[A-Za-z_][A-Za-z0-9_]* *=)")


class ExtractionError(ValueError):
    """The reply holds no usable program; the message says why."""


def extract_program(reply: str | None) -> str:
    """Return the program in ``reply`` that defines ``build_model``.

    Fenced blocks are preferred (the last one defining the entry point wins). When that block
    uses names that only earlier blocks define, the blocks are joined. Without fences, prose
    lines before and after the code are trimmed.
    """
    if reply is None or not reply.strip():
        raise ExtractionError("empty reply")
    blocks = [body for lang, body in _FENCE.findall(reply) if lang.lower() in _CODE_LANGS and body.strip()]
    if blocks:
        return _from_blocks(blocks)
    return _from_plain_text(reply)


def _defines_entry(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.FunctionDef) and node.name == ENTRY_POINT for node in tree.body)


def _parse(text: str) -> ast.Module | None:
    try:
        return cast(ast.Module, pyast.parse(text))  # mode "exec" always parses to a Module
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return None


def _from_blocks(blocks: list[str]) -> str:
    parsed = [(body, _parse(body)) for body in blocks]
    with_entry = [i for i, (_, tree) in enumerate(parsed) if tree is not None and _defines_entry(tree)]
    if not with_entry:
        if any(ENTRY_POINT in body for body, tree in parsed if tree is None):
            bad = next(body for body, tree in parsed if tree is None and ENTRY_POINT in body)
            raise ExtractionError(f"the code block defining {ENTRY_POINT} does not parse: {_syntax_error(bad)}")
        raise ExtractionError(f"no code block defines {ENTRY_POINT}(input_dim, num_classes)")
    last = with_entry[-1]
    body, tree = parsed[last]
    missing = _undefined_names(cast(ast.Module, tree))  # with_entry indexes blocks that parsed only
    if missing:
        earlier = [b for b, t in parsed[:last] if t is not None]
        joined = "\n\n".join(earlier + [body])
        joined_tree = _parse(joined)
        if joined_tree is not None and len(_undefined_names(joined_tree)) < len(missing):
            return joined.strip() + "\n"
    return body.strip() + "\n"


def _from_plain_text(reply: str) -> str:
    lines = reply.strip().splitlines()
    starts = [i for i, line in enumerate(lines) if _CODE_START.match(line)]
    for start in starts or [0]:
        for end in range(len(lines), start, -1):
            text = "\n".join(lines[start:end])
            tree = _parse(text)
            if tree is not None and _defines_entry(tree):
                return text.strip() + "\n"
    if ENTRY_POINT not in reply:
        raise ExtractionError(f"the reply contains no code defining {ENTRY_POINT}(input_dim, num_classes)")
    raise ExtractionError(f"the code defining {ENTRY_POINT} does not parse: {_syntax_error(reply)}")


def _syntax_error(text: str) -> str:
    try:
        pyast.parse(text)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except (RecursionError, MemoryError, ValueError) as exc:
        return f"too complex to parse ({type(exc).__name__})"
    return "unknown"


def _undefined_names(tree: ast.Module) -> set[str]:
    """Module-level names the code loads but neither defines, imports nor gets from builtins."""
    defined = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return loaded - defined
