"""EvoPrompting prompts: the program contract and a runnable skeleton, parents as full code preceded
by their metrics, one concrete change asked for, then a target line."""

from __future__ import annotations

import ast
import hashlib
import io
import json
import tokenize
from typing import Literal

from pydantic import BaseModel, Field

from evoformer import pyast

SKELETON = """import torch
import torch.nn as nn


class Classifier(nn.Module):
    def __init__(self, input_dim: int, num_classes: int, hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(input_dim, hidden), nn.GELU(), nn.Dropout(dropout))
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)  # [B, T, hidden]
        weights = mask.unsqueeze(-1).to(h.dtype)  # [B, T, 1]: 1.0 on real tokens
        pooled = (h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # masked mean
        return self.head(pooled)  # [B, num_classes]


def build_model(input_dim: int, num_classes: int) -> nn.Module:
    return Classifier(input_dim, num_classes)
"""

SYSTEM_PROMPT = """You design small, accurate PyTorch text classifiers.

The contract every program must keep:
- One Python file that defines, at module level, `build_model(input_dim: int, num_classes: int) -> torch.nn.Module`.
- The model's `forward(x, mask)` receives `x`, a float tensor [B, T, 384] (input_dim is 384): frozen
  all-MiniLM-L6-v2 token states of a claim/evidence pair. `x` is already embeddings, not token ids:
  never use nn.Embedding on it.
- `mask` is a bool tensor [B, T]; True marks a real token, False padding (nn.MultiheadAttention wants
  key_padding_mask=~mask). Pool over real tokens only.
- `forward` returns logits [B, num_classes] (SUPPORTS, REFUTES, NOT_ENOUGH_INFO). In training mode it may
  instead return a tuple of such logits (ensemble heads, each trained on its own loss).
- Only these imports are allowed: {imports}. No file, network or process access.
- Call PyTorch layers with their real signatures and pass each argument once.

A minimal runnable program (a masked mean pool and a linear head):
```python
{skeleton}```

{reply_format}"""

FULL_REPLY = "Reply with exactly one complete program in a single ```python code block."
DIFF_REPLY = (
    "Reply with SEARCH/REPLACE blocks when asked for them, else with one complete program in a ```python block."
)

PRELUDE_NOTE = (
    "This helper code is prepended to every program; you may use its names without redefining them:\n"
    "```python\n{prelude}\n```"
)

CHANGE_EXAMPLES = "its width, its depth, its pooling, an attention layer, dropout or a residual connection"
MUTATION_CHANGES: tuple[str, ...] = (
    "change the width of its hidden layers (halve it, or make it half as wide again)",
    "change its depth: add one layer or block, or remove one",
    "replace its pooling over tokens with another masked pooling (max, learned attention weights, or mean and "
    "max concatenated)",
    "add a residual connection with a LayerNorm around one of its blocks",
    "change its activation function (GELU, SiLU or ReLU) or its dropout rate",
    "add one nn.MultiheadAttention layer (batch_first=True, key_padding_mask=~mask) over the tokens before pooling",
    "add a bottleneck: project to a smaller width before the classification head",
)
"""Concrete changes a mutation is asked for, one each. Why: a small model given the same open-ended
prompt for every child of a parent writes the same child again and again (the 1.5B model wrote one
program for three of six siblings), and it follows one named change better than a menu."""
COPY_REJECTED = "A copy of a parent (even with other names or comments) is rejected."

DIFF_FORMAT = """Reply with one or more SEARCH/REPLACE blocks that edit program 1. For example, this block would make
the skeleton's head deeper:
<<<<<<< SEARCH
        self.head = nn.Linear(hidden, num_classes)
=======
        self.head = nn.Sequential(nn.Linear(hidden, hidden // 2), nn.GELU(), nn.Linear(hidden // 2, num_classes))
>>>>>>> REPLACE
Your SEARCH parts must be lines copied exactly from program 1 (not from this example), with their indentation.
Keep each SEARCH part short but unique, and never include the `# Metrics` line in it."""
"""Why a worked example rather than placeholders: the 1.5B model copied a placeholder SEARCH line
("lines copied exactly from program 1, ...") verbatim into 2 of 6 diff replies."""

EditMode = Literal["full", "diff"]


class ParentView(BaseModel):
    """What a prompt shows of one parent."""

    id: str
    source: str
    params: int
    val_macro_f1: float = Field(description="Its fitness: the cross-validated mean val macro-F1.")
    recent_failures: list[str] = Field(default_factory=list, description="Reasons its recent children failed.")


class Target(BaseModel):
    """EvoPrompting's target: 90% of the smallest parent's size, 102% of the best parent's quality."""

    params: int
    val_macro_f1: float

    @classmethod
    def for_parents(cls, parents: list[ParentView], size_factor: float = 0.9, quality_factor: float = 1.02) -> Target:
        return cls(
            params=int(min(p.params for p in parents) * size_factor),
            val_macro_f1=min(1.0, max(p.val_macro_f1 for p in parents) * quality_factor),
        )


def metrics_line(params: int, fitness: float) -> str:
    return f"# Metrics: params {params:,} | fitness {fitness:.4f}"


def system_prompt(allowed_imports: list[str], prelude: str = "", edit_mode: EditMode = "full") -> str:
    """The contract, the skeleton and the reply format (and the prelude when there is one)."""
    system = SYSTEM_PROMPT.format(
        imports=", ".join(allowed_imports),
        skeleton=SKELETON,
        reply_format=DIFF_REPLY if edit_mode == "diff" else FULL_REPLY,
    )
    if prelude.strip():
        system += "\n\n" + PRELUDE_NOTE.format(prelude=prelude.strip())
    return system


def shown_source(parent: ParentView, compact: bool = False) -> str:
    """A parent's program as the prompt shows it (SEARCH blocks are matched against this text)."""
    return (compact_source(parent.source) if compact else parent.source).strip() + "\n"


def build_messages(
    parents: list[ParentView],
    allowed_imports: list[str],
    prelude: str = "",
    edit_mode: EditMode = "full",
    compact: bool = False,
    change: str | None = None,
) -> list[dict[str, str]]:
    """Chat messages for one child: mutation with one parent, crossover with two or more.

    ``edit_mode="diff"`` asks a mutation for SEARCH/REPLACE blocks against program 1 (a crossover is
    always a full rewrite); ``compact`` shows the parents without docstrings and comments; ``change``
    (one of :data:`MUTATION_CHANGES`) is the one change a mutation is asked for, else it may choose."""
    if not parents:
        raise ValueError("a prompt needs at least one parent")
    diff = edit_mode == "diff" and len(parents) == 1
    parts = []
    for number, parent in enumerate(parents, 1):
        parts.append(
            f"Program {number}:\n```python\n{metrics_line(parent.params, parent.val_macro_f1)}\n"
            f"{shown_source(parent, compact)}```"
        )
        if parent.recent_failures:
            failures = "\n".join(f"- {reason}" for reason in parent.recent_failures)
            parts.append(f"Recent children of program {number} failed; avoid these mistakes:\n{failures}")
    if len(parents) == 1:
        if change:
            task = (
                f"Mutate program 1 with this ONE change to its architecture: {change}. Keep the rest of program 1 "
                f"as it is; aim for a model that is smaller and more accurate. {COPY_REJECTED}"
            )
        else:
            task = (
                f"Mutate program 1: make ONE concrete change to its architecture, for example {CHANGE_EXAMPLES}, "
                f"aiming for a model that is smaller and more accurate. {COPY_REJECTED}"
            )
        task += "\n" + (DIFF_FORMAT if diff else "Return the whole new program.")
    else:
        task = (
            f"Cross over programs 1-{len(parents)}: combine their best ideas into one new program that is smaller "
            f"and more accurate and differs from every parent. {COPY_REJECTED} Return the whole new program."
        )
    target = Target.for_parents(parents)
    parts.append(f"{task}\nTarget for the new program:\n{metrics_line(target.params, target.val_macro_f1)}")
    return [
        {"role": "system", "content": system_prompt(allowed_imports, prelude, "diff" if diff else "full")},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def repair_message(error: str) -> str:
    """The follow-up request of a repair round: what went wrong, and a request for the whole program."""
    return (
        f"{error.strip()}\n\nFix this and return the whole corrected program (build_model(input_dim, num_classes) "
        "at module level, the contract above kept) in a single ```python code block."
    )


def compact_source(source: str) -> str:
    """``source`` without docstrings, comments and runs of blank lines (to fit a small context).

    A body that held only a docstring gets ``pass``. A source that does not parse, or whose compact
    form would not, is returned unchanged."""
    try:
        tree = pyast.parse(source)
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (SyntaxError, tokenize.TokenError, RecursionError, MemoryError, ValueError):
        return source
    lines = source.splitlines()
    dropped: set[int] = set()  # 0-based line numbers
    replaced: dict[int, str] = {}
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) or not node.body:
            continue
        first = node.body[0]
        if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)):
            continue
        if not isinstance(first.value.value, str) or first.end_lineno is None or first.end_col_offset is None:
            continue
        start, end = first.lineno - 1, first.end_lineno - 1
        before, after = lines[start][: first.col_offset], lines[end][first.end_col_offset :]
        if before.strip() or (after.strip() and not after.strip().startswith("#")):
            continue  # shares a line with code: leave it
        dropped.update(range(start, end + 1))
        if len(node.body) == 1:
            dropped.discard(start)
            replaced[start] = before + "pass"
    in_string: set[int] = set()  # lines inside multi-line strings: kept as they are
    for token in tokens:
        if token.type == tokenize.STRING and token.end[0] > token.start[0]:
            in_string.update(range(token.start[0], token.end[0]))
        if token.type != tokenize.COMMENT:
            continue
        row, col = token.start[0] - 1, token.start[1]
        if row in dropped or row in replaced:
            continue
        kept = lines[row][:col].rstrip()
        if kept:
            replaced[row] = kept
        else:
            dropped.add(row)
    out: list[str] = []
    for number, line in enumerate(lines):
        if number in dropped:
            continue
        line = replaced.get(number, line)
        if number not in in_string and not line.strip() and (not out or not out[-1].strip()):
            continue
        out.append(line)
    compact = "\n".join(out).strip() + "\n"
    try:
        pyast.parse(compact)
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return source
    return compact


def prompt_hash(messages: list[dict[str, str]]) -> str:
    """Short content hash of a prompt, recorded in the lineage."""
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]
