"""``runs/<run-id>/report.html``: one self-contained page about a run.

It opens with how fitness was measured and whether the best evolved candidate beat the best seed
(on fitness, and on test, which is measured and never used to choose). It shows the data and
baselines (majority class included), the leaderboard (fitness ± SE, folds, stage), the Pareto plot
(embedded PNG), the lineage tree (parents and operator of each child), the best programs with
their diffs against their parents, and the compression tables. Everything is read from the run
folder, so the page can be rebuilt at any time; the programs shown are the orchestrator's copies
in ``programs/``, never files a sandbox could write.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Collection
from html import escape
from pathlib import Path
from typing import Any

from evoformer.baselines import REPORTED_SPLITS, macro_f1_table
from evoformer.candidates.job import Status
from evoformer.evolution.population import Individual, pareto_front
from evoformer.evolution.report import (
    FITNESS_AXIS,
    fitness_cell,
    fitness_kind_text,
    folds_text,
    leaderboard_rows,
    llm_quality_text,
    plot_pareto,
    program_diff,
    verdict,
)
from evoformer.evolution.state import load_population
from evoformer.files import write_text_atomic
from evoformer.layout import RunLayout

# A backslash ends a line inside the string without a newline: the CSS bytes stay as they were.
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1200px;\
color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}\
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}tr.front td{background:#eef7ee}\
tr.baseline td{color:#666;font-style:italic}
tr.failed td{color:#999}pre{background:#f8f8f8;padding:.6rem;overflow-x:auto;font-size:.8rem;border:1px solid #eee}
.add{color:#116611;background:#eaffea}.del{color:#991111;background:#ffecec}.hunk{color:#555}
ul.tree{list-style:none;padding-left:1.2rem;border-left:1px dotted #bbb}ul.tree li{margin:.15rem 0}
tr.screened td{color:#777}p.headline{font-size:1.05rem;background:#f6f8fa;padding:.6rem;border:1px solid #eee}
.muted{color:#777}.ok{color:#116611}.bad{color:#991111}img{max-width:100%;border:1px solid #eee}
"""


def _f(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return escape(str(value))


def _table(
    rows: list[dict[str, Any]], columns: list[str], left: Collection[str] = frozenset(), row_class: Any = None
) -> str:
    head = "".join(f'<th class="{"l" if c in left else ""}">{escape(c)}</th>' for c in columns)
    body = []
    for row in rows:
        css = row_class(row) if row_class else ""
        cells = "".join(f'<td class="{"l" if c in left else ""}">{_f(row.get(c))}</td>' for c in columns)
        body.append(f'<tr class="{css}">{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _baseline_rows(baselines: dict[str, Any]) -> list[dict[str, Any]]:
    f1 = {split: macro_f1_table(baselines, (split,)) for split in REPORTED_SPLITS}
    rows = []
    for name, scores in baselines.items():
        row: dict[str, Any] = {"baseline": name}
        for split in REPORTED_SPLITS:
            value = scores.get(split)
            row[f"{split}_macro_f1"] = f1[split].get(name, {}).get(split)
            row[f"{split}_accuracy"] = value.get("accuracy") if isinstance(value, dict) else None
        rows.append(row)
    return rows


def _data_section(summary: dict[str, Any]) -> str:
    splits = summary.get("splits") or {}
    labels = sorted({label for s in splits.values() for label in s.get("labels", {})})
    rows = [
        {"split": name, "pairs": s.get("pairs"), "claims": s.get("claims"), **s.get("labels", {})}
        for name, s in splits.items()
    ]
    source = summary.get("source") or {}
    augmented = summary.get("augmented")
    parts = [
        "<h2>Data and baselines</h2>",
        f"<p>Source <code>{escape(str(source.get('source', '?')))}</code> ({escape(str(source.get('kind', '?')))}), "
        f"split by claim: claim overlap between splits {_f(summary.get('claim_overlap'))}.</p>",
        _table(rows, ["split", "pairs", "claims", *labels], left={"split"}),
    ]
    if augmented:
        parts.append(
            f"<p>Train augmented with {_f(augmented.get('synthetic_pairs'))} synthetic pairs "
            f"(set {escape(str(augmented.get('version')))}); val and test are the real ones.</p>"
        )
    parts.append(
        _table(
            _baseline_rows(summary.get("baselines", {})),
            ["baseline", "val_macro_f1", "val_accuracy", "test_macro_f1", "test_accuracy"],
            left={"baseline"},
            row_class=lambda r: "baseline",
        )
    )
    return "\n".join(parts)


def _majority(summary: dict[str, Any]) -> tuple[float | None, float | None]:
    majority = {
        split: macro_f1_table(summary.get("baselines") or {}, (split,)).get("majority", {}).get(split)
        for split in REPORTED_SPLITS
    }
    return majority["val"], majority["test"]


def _fitness_of_run(people: list[Individual], summary: dict[str, Any]) -> dict[str, Any]:
    """The evolve summary's fitness section, or (mid-run, before the summary exists) one read off
    the population: the most folds any candidate has."""
    fitness = (summary.get("evolve") or {}).get("fitness")
    if fitness:
        return dict(fitness)
    folds = max((len(i.fold_f1) for i in people), default=1) or 1
    return {
        "kind": "cv" if folds > 1 else "split",
        "folds": folds,
        "screened_out": sum(i.stage == "screened" for i in people),
        "fully_evaluated": sum(i.trained for i in people),
    }


def _headline(people: list[Individual], summary: dict[str, Any]) -> str:
    """How fitness was measured, the verdict of the run (when it has ended) and the majority class."""
    fitness = _fitness_of_run(people, summary)
    evolve = summary.get("evolve") or {}
    parts = [f"<b>Fitness: {escape(fitness_kind_text(fitness))}</b> (mean val macro-F1 over the folds ± SE)."]
    if evolve:
        parts.append(escape(verdict(evolve)))
        parts.append(escape(llm_quality_text(evolve.get("llm") or {})))
    val, test = _majority(summary)
    if val is not None or test is not None:
        parts.append(f"Majority class: val {_f(val, 3)}, test {_f(test, 3)} (macro-F1).")
    return f"<p class='headline'>{' '.join(parts)}</p>"


def _leaderboard_section(people: list[Individual], summary: dict[str, Any]) -> str:
    front = {i.id for i in pareto_front(people)}
    rows = leaderboard_rows(people)
    for row in rows:
        row["front"] = "yes" if row["id"] in front else ""
    val, test = _majority(summary)
    rows.append(
        {
            "id": "majority class",
            "fitness": "" if val is None else f"{val:.3f} (val split)",
            "test_macro_f1": test,
            "status": "baseline",
        }
    )
    evolve = summary.get("evolve") or {}
    counts = evolve.get("candidates") or {}
    fitness = _fitness_of_run(people, summary)
    stopped = fitness.get("screened_out")
    cascade = (
        f" The cascade stopped {_f(stopped)} {'child' if stopped == 1 else 'children'} after stage 1 (their "
        "fitness column shows the "
        f"stage-1 score, not a fitness); {_f(fitness.get('fully_evaluated'))} were fully evaluated."
        if stopped
        else ""
    )
    note = (
        f"<p>Operator: {escape(str(evolve.get('operator_reason', '?')))}. "
        f"Generations: {_f(evolve.get('generations'))}. "
        f"Candidates: {_f(counts.get('total'))} total, {_f(counts.get('ok'))} trained, "
        f"{_f(counts.get('rejected'))} rejected "
        f"before training, {_f(counts.get('failed'))} failed in training.{cascade} "
        f"Ranked by fitness ({escape(fitness_kind_text(fitness))}: mean val macro-F1 over the folds ± SE; folds "
        "lists each fold's score); test is the kept (fold-0) model's, reported, never used to choose. Green rows "
        "are on the final Pareto front (fitness up, params down).</p>"
    )

    def css(row: dict[str, Any]) -> str:
        if row["status"] == "baseline":
            return "baseline"
        if row.get("stage") == "screened":
            return "screened"
        return "front" if row.get("front") else ("" if row["status"] == Status.OK else "failed")

    columns = [
        "id",
        "status",
        "stage",
        "fitness",
        "folds",
        "params",
        "test_macro_f1",
        "front",
        "generation",
        "operator",
        "parents",
        "reason",
        "copy_of",
    ]
    left = {"id", "status", "stage", "fitness", "folds", "operator", "parents", "reason", "copy_of"}
    return "<h2>Leaderboard</h2>" + note + _table(rows, columns, left=left, row_class=css)


def _pareto_section(people: list[Individual], layout: RunLayout, summary: dict[str, Any]) -> str:
    if not any(i.trained for i in people):
        return "<h2>Pareto plot</h2><p class='muted'>No trained candidate yet.</p>"
    plot = plot_pareto(people, layout.pareto_plot, _majority(summary)[0])
    data = base64.b64encode(plot.read_bytes()).decode()
    return (
        f"<h2>Pareto plot</h2><p>{FITNESS_AXIS[0].upper() + FITNESS_AXIS[1:]} against parameters (log scale), "
        "with ± 1 SE error bars, for the fully evaluated candidates only (those the cascade stopped have no "
        "fitness); seeds are red squares, the step line is the final front, the dashed line the majority class "
        "(on the val split).</p>"
        f"<img alt='Pareto plot' src='data:image/png;base64,{data}'>"
    )


def _node(person: Individual, children: dict[str, list[Individual]], seen: set[str]) -> str:
    seen.add(person.id)
    status = (
        f"<span class='ok'>fitness {escape(fitness_cell(person))}, {person.params:,} params</span>"
        if person.trained
        else f"<span class='muted'>{escape(fitness_cell(person))}, stopped by the cascade</span>"
        if person.stage == "screened"
        else f"<span class='bad'>{escape(person.status)}</span>"
    )
    others = [p for p in person.parents[1:]]
    via = f" × {', '.join(escape(p) for p in others)}" if others else ""
    label = f"<b>{escape(person.id)}</b> <span class='muted'>{escape(person.operator)}{via}</span> {status}"
    if person.description:
        label += f" <span class='muted'>— {escape(person.description[:160])}</span>"
    kids = [c for c in children.get(person.id, []) if c.id not in seen]
    inner = "".join(_node(c, children, seen) for c in kids)
    return f"<li>{label}{f'<ul class=tree>{inner}</ul>' if inner else ''}</li>"


def _lineage_section(people: list[Individual]) -> str:
    children: dict[str, list[Individual]] = {}
    for person in people:
        if person.parents:  # listed under its first parent; a crossover names its other parents
            children.setdefault(person.parents[0], []).append(person)
    seen: set[str] = set()
    roots = [p for p in people if not p.parents]
    items = "".join(_node(root, children, seen) for root in roots)
    return (
        "<h2>Lineage</h2><p>Each child under its (first) parent, with the operator that made it; "
        "a crossover names its other parents after ×.</p>" + f"<ul class='tree'>{items}</ul>"
    )


def _diff_html(diff: str) -> str:
    lines = []
    for line in diff.splitlines():
        css = (
            "hunk"
            if line.startswith("@@")
            else "add"
            if line.startswith("+")
            else "del"
            if line.startswith("-")
            else ""
        )
        lines.append(f"<span class='{css}'>{escape(line)}</span>" if css else escape(line))
    return "<pre>" + "\n".join(lines) + "</pre>"


def _best_programs_section(people: list[Individual], layout: RunLayout, top: int) -> str:
    trained = sorted((i for i in people if i.trained), key=lambda i: (-(i.val_macro_f1 or 0.0), i.params or 0))[:top]
    parts = [
        f"<h2>Best programs</h2><p>The {len(trained)} best by fitness, each with its diff against its parents.</p>"
    ]
    for person in trained:
        source = layout.read_program(person.id) or "(program file missing)"
        parts.append(
            f"<h3>{escape(person.id)} — fitness {escape(fitness_cell(person))}"
            + (f" (folds {escape(folds_text(person.fold_f1))})" if len(person.fold_f1) > 1 else "")
            + f", test {_f(person.test_macro_f1)}, {person.params:,} params, {escape(person.operator)}</h3>"
        )
        if person.description:
            parts.append(f"<p>{escape(person.description)}</p>")
        for parent in person.parents:
            parent_source = layout.read_program(parent)
            if parent_source is not None:
                parts.append(f"<p>Diff against parent <b>{escape(parent)}</b>:</p>")
                parts.append(_diff_html(program_diff(parent_source, source, parent, person.id) or "(identical)"))
        parts.append(f"<details><summary>Full program</summary><pre>{escape(source)}</pre></details>")
    return "\n".join(parts)


def _compression_section(summary: dict[str, Any]) -> str:
    compress = summary.get("compress")
    if not compress:
        return "<h2>Compression</h2><p class='muted'>No candidate of this run was compressed.</p>"
    parts = [
        "<h2>Compression</h2><p>Every variant measured in the same sandbox run as its fp32 model; size_x and speedups "
        "are fp32 / variant. The starred variant is the fastest at batch 1 within the val macro-F1 budget "
        "(chosen on val).</p>"
    ]
    for entry in compress.get("candidates", []):
        parts.append(
            f"<h3>{escape(str(entry.get('candidate')))}: {escape(str(entry.get('status')))}"
            + (f" — {escape(str(entry.get('reason')))}" if entry.get("reason") else "")
            + "</h3>"
        )
        rows = [
            dict(row, variant=row["variant"] + (" *" if row["variant"] == entry.get("best") else ""))
            for row in entry.get("table", [])
        ]
        if rows:
            columns = [c for c in rows[0] if c != "status"]
            parts.append(_table(rows, columns, left={"variant", "note"}))
    val, test = _majority(summary)
    parts.append(
        _table(
            [{"baseline": "majority class", "val_macro_f1": val, "test_macro_f1": test}],
            ["baseline", "val_macro_f1", "test_macro_f1"],
            left={"baseline"},
            row_class=lambda r: "baseline",
        )
    )
    return "\n".join(parts)


def render_report(run_dir: Path | RunLayout, top_programs: int = 3) -> str:
    """The report of ``run_dir`` as one HTML string (images embedded, no external resources)."""
    layout = RunLayout.of(run_dir)
    if not layout.summary.is_file():
        raise FileNotFoundError(f"{layout.root} holds no {RunLayout.SUMMARY}: not a run folder")
    summary = json.loads(layout.summary.read_text())
    people = load_population(layout)
    run_id = escape(str(summary.get("run_id", layout.run_id)))
    sections = [_headline(people, summary), _data_section(summary)] if people else [_data_section(summary)]
    if people:
        sections += [
            _leaderboard_section(people, summary),
            _pareto_section(people, layout, summary),
            _lineage_section(people),
            _best_programs_section(people, layout, top_programs),
        ]
    else:
        sections.append("<h2>Leaderboard</h2><p class='muted'>This run has no evolution yet.</p>")
    sections.append(_compression_section(summary))
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>EvoFormer run {run_id}</title>"
        f"<style>{_STYLE}</style></head><body><h1>EvoFormer run {run_id}</h1>"
        f"<p class='muted'>{escape(str(layout.root.resolve()))}</p>{''.join(sections)}</body></html>"
    )


def write_report(run_dir: Path | RunLayout, top_programs: int = 3) -> Path:
    """Render and write ``report.html`` into the run folder (atomically); return its path."""
    path = RunLayout.of(run_dir).report
    write_text_atomic(path, render_report(run_dir, top_programs))
    return path
