"""Views of the population: leaderboard rows, the best program as markdown, the Pareto plot."""

from __future__ import annotations

import difflib
from pathlib import Path

from evoformer.evolution.population import Individual, pareto_front


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def leaderboard_rows(individuals: list[Individual]) -> list[dict]:
    """One row per candidate, trained ones first by val macro-F1, then the failures."""
    ordered = sorted(individuals, key=lambda i: (not i.trained, -(i.val_macro_f1 or 0.0), i.params or 0, i.id))
    return [
        {
            "id": i.id,
            "generation": i.generation,
            "parents": ", ".join(i.parents),
            "operator": i.operator,
            "params": i.params,
            "val_macro_f1": _round(i.val_macro_f1),
            "test_macro_f1": _round(i.test_macro_f1),
            "status": i.status,
            "reason": i.reason[:200],
        }
        for i in ordered
    ]


def best_program_markdown(individual: Individual, source: str) -> str:
    """The best candidate's code under its metrics and lineage."""
    lineage = ", ".join(individual.parents) or "seed"
    return (
        f"# Best candidate: `{individual.id}`\n\n"
        f"| params | val macro-F1 | test macro-F1 | generation | parents | operator |\n|---|---|---|---|---|---|\n"
        f"| {individual.params:,} | {individual.val_macro_f1:.4f} | {individual.test_macro_f1:.4f} | "
        f"{individual.generation} | {lineage} | {individual.operator} |\n\n"
        f"{individual.description}\n\n```python\n{source.strip()}\n```\n"
    )


def plot_pareto(individuals: list[Individual], path: Path, majority_f1: float | None = None) -> Path:
    """Params (log) against val macro-F1 for every trained candidate, seeds and front marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trained = [i for i in individuals if i.trained]
    front = pareto_front(individuals)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    seeds = [i for i in trained if i.generation == 0]
    children = [i for i in trained if i.generation > 0]
    if children:
        scatter = ax.scatter(
            [i.size for i in children],
            [i.f1 for i in children],
            c=[i.generation for i in children],
            cmap="viridis",
            s=30,
            label="children",
        )
        fig.colorbar(scatter, ax=ax, label="generation", ticks=sorted({i.generation for i in children}))
    ax.scatter([i.size for i in seeds], [i.f1 for i in seeds], marker="s", c="tab:red", s=40, label="seeds")
    if front:
        ax.step(
            [i.size for i in front],
            [i.f1 for i in front],
            where="post",
            c="black",
            lw=1,
            label="Pareto front",
        )
    if majority_f1 is not None:
        ax.axhline(majority_f1, ls="--", c="grey", lw=1, label=f"majority class ({majority_f1:.3f})")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("val macro-F1")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def program_diff(parent_source: str, child_source: str, parent_id: str, child_id: str) -> str:
    """Unified diff (``diff -u``) of a child's program against a parent's."""
    return "".join(
        difflib.unified_diff(
            parent_source.splitlines(keepends=True),
            child_source.splitlines(keepends=True),
            fromfile=f"{parent_id}.py",
            tofile=f"{child_id}.py",
        )
    )
