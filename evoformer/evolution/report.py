"""Views of the population: leaderboard rows (fitness ± SE, folds, stage, test), the best program as
markdown, the Pareto plot, and the verdict sentence an evolve run ends with."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from evoformer.evolution.population import Individual, pareto_front


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def fitness_text(mean: float | None, se: float | None = None) -> str:
    """``0.512 ± 0.011``; just the mean without an SE (one fold); empty without a fitness."""
    if mean is None:
        return ""
    return f"{mean:.3f}" if se is None else f"{mean:.3f} ± {se:.3f}"


def fitness_cell(individual: Individual) -> str:
    """A candidate's fitness as the leaderboard shows it: ``mean ± SE`` when fully evaluated,
    ``stage 1: F`` when the cascade stopped it (a stage-1 score, not a fitness), else empty."""
    if individual.stage == "screened":
        return "" if individual.screen_f1 is None else f"stage 1: {individual.screen_f1:.3f}"
    if not individual.trained:
        return ""
    return fitness_text(individual.val_macro_f1, individual.fitness_se)


def folds_text(fold_f1: list[float]) -> str:
    """The per-fold val macro-F1, ``0.501 / 0.533 / 0.512``."""
    return " / ".join(f"{f:.3f}" for f in fold_f1)


def leaderboard_order(individual: Individual) -> tuple[int, float, int, str]:
    """Fully evaluated first by fitness, then the screened by stage-1 score, then the rest."""
    if individual.trained:
        return (0, -(individual.val_macro_f1 or 0.0), individual.params or 0, individual.id)
    if individual.stage == "screened":
        return (1, -(individual.screen_f1 or 0.0), individual.params or 0, individual.id)
    return (2, 0.0, individual.params or 0, individual.id)


def leaderboard_rows(individuals: list[Individual], run_id: str | None = None) -> list[dict]:
    """One row per candidate: fully evaluated ones first by fitness (mean val macro-F1 over the
    folds, ``± SE``), then the ones the cascade stopped (their stage-1 score), then the rest. The
    test score is the kept (fold-0) model's, measured and never used to choose. Status and reason
    come first (a failure must be seen without scrolling); with ``run_id``, each trained candidate's
    last cell is the JSON to paste into the compress deployment's custom run."""
    return [
        {
            "id": i.id,
            "status": i.status,
            "reason": i.reason[:200],
            "stage": i.stage,
            "fitness": fitness_cell(i),
            "folds": folds_text(i.fold_f1) if i.trained else "",
            "params": i.params,
            "test_macro_f1": _round(i.test_macro_f1) if i.trained else None,
            "generation": i.generation,
            "parents": ", ".join(i.parents),
            "operator": i.operator,
            "copy_of": i.copy_of,
            "repairs": i.repairs if i.operator.startswith("llm-") else None,
        }
        | ({"compress_parameters": compress_parameters(run_id, i.id) if i.trained else ""} if run_id else {})
        for i in sorted(individuals, key=leaderboard_order)
    ]


def compress_parameters(run_id: str, candidate: str) -> str:
    """The compress deployment's parameters for one candidate, as the JSON its custom run takes."""
    return json.dumps({"params": {"run_id": run_id, "candidates": [candidate]}})


def _brief_text(brief: dict[str, Any]) -> str:
    fitness = brief.get("fitness") or {}
    mean = fitness.get("mean") if fitness.get("mean") is not None else brief.get("val_macro_f1")
    text = fitness_text(mean, fitness.get("se")) or "no fitness"
    return f"{brief['id']}, fitness {text}"


def verdict(summary: dict[str, Any]) -> str:
    """The plain sentence an evolve run ends with: did the best evolved candidate beat the best
    seed on fitness, and on test (measured, never used to choose)? ``summary``: an
    :class:`~evoformer.summaries.EvolveSummary` as a dict."""
    seed, evolved = summary.get("best_seed"), summary.get("best_evolved")
    if not evolved or not seed:
        missing = "evolved candidate" if not evolved else "seed"
        return f"No {missing} was fully evaluated, so the best evolved candidate cannot be compared with the best seed."
    beat = "beat" if summary.get("evolved_beats_best_seed") else "did not beat"
    sentence = (
        f"The best evolved candidate ({_brief_text(evolved)}) {beat} the best seed ({_brief_text(seed)}) on fitness"
    )
    on_test = summary.get("evolved_beats_best_seed_on_test")
    if on_test is None or evolved.get("test_macro_f1") is None or seed.get("test_macro_f1") is None:
        return sentence + "; on test (measured, not used to choose) there is no score for both."
    test_beat = "beat it" if on_test else "did not beat it"
    return (
        f"{sentence}; on test (measured, not used to choose) it {test_beat}, "
        f"{evolved['test_macro_f1']:.3f} vs {seed['test_macro_f1']:.3f}."
    )


FITNESS_KINDS = {"cv": "{folds}-fold cross-validation over train + val", "split": "single val split"}


def llm_quality_text(llm: dict[str, Any]) -> str:
    """How well the LLM's children fared (the summary's ``llm`` section), one sentence; '' without LLM children."""
    children = llm.get("children") or 0
    if not children:
        return ""
    valid = llm.get("valid_children") or 0
    text = f"LLM children: {valid} of {children} valid (trained ok, no copy; {100 * valid / children:.0f}%)"
    if valid:
        text += (
            f", {llm.get('repairs') or 0:.2f} repair rounds, {llm.get('tokens_per_valid_child') or 0:,.0f} tokens and "
            f"{llm.get('seconds_per_valid_child') or 0:,.0f} s per valid child"
        )
    return text + "."


def fitness_kind_text(fitness: dict[str, Any] | None) -> str:
    """How fitness was measured, in words (``3-fold cross-validation over train + val``)."""
    if not fitness:
        return "single val split"
    template = FITNESS_KINDS.get(str(fitness.get("kind")), str(fitness.get("kind")))
    return template.format(folds=fitness.get("folds", "?"))


FITNESS_AXIS = "fitness (mean val macro-F1 over folds)"


def best_program_markdown(individual: Individual, source: str) -> str:
    """The best candidate's code under its metrics (fitness ± SE over folds, the kept model's
    test score) and lineage."""
    lineage = ", ".join(individual.parents) or "seed"
    test = "–" if individual.test_macro_f1 is None else f"{individual.test_macro_f1:.4f}"
    return (
        f"# Best candidate: `{individual.id}`\n\n"
        f"| params | {FITNESS_AXIS} | folds | test macro-F1 | generation | parents | operator |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| {individual.params:,} | {fitness_cell(individual)} | {folds_text(individual.fold_f1)} | {test} | "
        f"{individual.generation} | {lineage} | {individual.operator} |\n\n"
        f"{individual.description}\n\n```python\n{source.strip()}\n```\n"
    )


def plot_pareto(individuals: list[Individual], path: Path, majority_f1: float | None = None) -> Path:
    """Params (log) against fitness for every fully evaluated candidate (the cascade's screened
    ones have no fitness and are left out), with SE error bars; seeds and front marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trained = [i for i in individuals if i.trained]
    front = pareto_front(individuals)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    seeds = [i for i in trained if i.generation == 0]
    children = [i for i in trained if i.generation > 0]
    for group, color in ((children, "tab:grey"), (seeds, "tab:red")):
        with_se = [i for i in group if i.fitness_se is not None]
        if with_se:
            ax.errorbar(
                [i.size for i in with_se],
                [i.f1 for i in with_se],
                yerr=[i.fitness_se or 0.0 for i in with_se],
                fmt="none",
                ecolor=color,
                elinewidth=0.8,
                capsize=2,
                alpha=0.7,
                zorder=1,
            )
    if children:
        scatter = ax.scatter(
            [i.size for i in children],
            [i.f1 for i in children],
            c=[i.generation for i in children],
            cmap="viridis",
            s=30,
            label="children",
            zorder=2,
        )
        fig.colorbar(scatter, ax=ax, label="generation", ticks=sorted({i.generation for i in children}))
    ax.scatter([i.size for i in seeds], [i.f1 for i in seeds], marker="s", c="tab:red", s=40, label="seeds", zorder=2)
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
    ax.set_ylabel(FITNESS_AXIS)
    if any(i.fitness_se is not None for i in trained):
        ax.set_title("error bars: ± 1 SE over folds", fontsize=8, loc="right")
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
