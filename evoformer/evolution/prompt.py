"""EvoPrompting prompts: parents as full code preceded by their metrics, then a target line."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, Field

SYSTEM_PROMPT = """You design small, accurate PyTorch text classifiers.
Each program is one Python file defining `build_model(input_dim: int, num_classes: int) -> torch.nn.Module`.
The model's `forward(x, mask)` receives `x`, a float tensor [B, T, input_dim] of frozen token states
(all-MiniLM-L6-v2, input_dim 384) for a claim/evidence pair, and `mask`, a bool tensor [B, T] where True
marks a real token. It returns logits [B, num_classes] (SUPPORTS, REFUTES, NOT_ENOUGH_INFO).
In training mode it may instead return a tuple of such logits (ensemble heads, each trained on its own loss).
Only these imports are allowed: {imports}. No file, network or process access.
Reply with exactly one complete program in a single ```python code block."""

PRELUDE_NOTE = (
    "This helper code is prepended to every program; you may use its names without redefining them:\n"
    "```python\n{prelude}\n```"
)


class ParentView(BaseModel):
    """What a prompt shows of one parent."""

    id: str
    source: str
    params: int
    val_macro_f1: float
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


def metrics_line(params: int, val_macro_f1: float) -> str:
    return f"# Metrics: params {params:,} | val macro-F1 {val_macro_f1:.4f}"


def build_messages(parents: list[ParentView], allowed_imports: list[str], prelude: str = "") -> list[dict[str, str]]:
    """Chat messages for one child: mutation with one parent, crossover with two or more."""
    if not parents:
        raise ValueError("a prompt needs at least one parent")
    system = SYSTEM_PROMPT.format(imports=", ".join(allowed_imports))
    if prelude.strip():
        system += "\n\n" + PRELUDE_NOTE.format(prelude=prelude.strip())
    parts = []
    for number, parent in enumerate(parents, 1):
        parts.append(
            f"Program {number}:\n```python\n{metrics_line(parent.params, parent.val_macro_f1)}\n"
            f"{parent.source.strip()}\n```"
        )
        if parent.recent_failures:
            failures = "\n".join(f"- {reason}" for reason in parent.recent_failures)
            parts.append(f"Recent children of program {number} failed; avoid these mistakes:\n{failures}")
    if len(parents) == 1:
        task = "Mutate program 1: write a new variant that is smaller and more accurate."
    else:
        task = (
            f"Cross over programs 1-{len(parents)}: "
            "combine their best ideas into one new program that is smaller and more accurate."
        )
    target = Target.for_parents(parents)
    parts.append(f"{task}\nTarget for the new program:\n{metrics_line(target.params, target.val_macro_f1)}")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def prompt_hash(messages: list[dict[str, str]]) -> str:
    """Short content hash of a prompt, recorded in the lineage."""
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]
