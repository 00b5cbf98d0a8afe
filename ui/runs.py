"""Read-only views of run folders for the GUI: runs, progress, leaderboard (fitness ± SE over folds,
per-fold scores, cascade stage, the kept model's test score), Pareto data, code, diffs against
parents and compression tables. Nothing here writes or imports Prefect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from evoformer.baselines import macro_f1_table
from evoformer.candidates.job import METRICS_FILE, PROGRAM_FILE, Status
from evoformer.compression.evaluate import CompressionReport, table_rows
from evoformer.evolution.population import Individual, pareto_front
from evoformer.evolution.report import fitness_kind_text, fitness_text, folds_text, leaderboard_rows, program_diff
from evoformer.evolution.state import load_population
from evoformer.layout import RunLayout
from evoformer.runs import StorageConfig

UI_DIR = RunLayout.UI_DIR  # per-run files the GUI writes: launch.json (settings, never the key), logs, uploaded seeds
LAUNCH_FILE = RunLayout.LAUNCH_FILE


def runs_root(runs_dir: str | None = None) -> Path:
    """The runs root: ``runs_dir``, else ``$EVOFORMER_RUNS``, else ``./runs`` (as every flow resolves it)."""
    return Path(runs_dir or StorageConfig().runs_dir)


def read_json(path: Path) -> Any:
    """The parsed file, or None when it is missing or half written."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


class RunInfo(BaseModel):
    """One run folder as listed in the GUI."""

    run_id: str
    path: str
    modified: float = Field(description="Latest change of its summary, state or lineage (epoch seconds).")
    kinds: list[str] = Field(
        default_factory=list, description="Sections of summary.json (data, evolve, compress, ...)."
    )
    completed_generation: int | None = None


def list_runs(root: Path) -> list[RunInfo]:
    """Run folders under ``root`` (those with a summary, a state or a GUI launch record), newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        run = RunLayout(folder)
        marks = [run.summary, run.state, run.lineage, run.launch_file]
        present = [m for m in marks if m.is_file()]
        if not folder.is_dir() or not present:
            continue
        summary = read_json(run.summary) or {}
        state = read_json(run.state) or {}
        found.append(
            RunInfo(
                run_id=folder.name,
                path=str(folder.resolve()),
                modified=max(m.stat().st_mtime for m in present),
                kinds=[
                    k
                    for k in ("data", "evolve", "compress", "synthesize")
                    if k in summary or (k == "data" and "splits" in summary)
                ],
                completed_generation=state.get("completed_generation"),
            )
        )
    return sorted(found, key=lambda r: (-r.modified, r.run_id))


def baselines(run_dir: Path) -> dict[str, dict[str, float]]:
    """Val and test macro-F1 of each baseline (majority first), from the run's summary."""
    summary = read_json(RunLayout.of(run_dir).summary) or {}
    return macro_f1_table(summary.get("baselines") or {})


class Progress(BaseModel):
    """Where an evolve run stands, from its folder alone."""

    completed_generation: int = Field(default=-1, description="-1: seeds not trained yet; 0: seeds done.")
    total_generations: int | None = None
    proposed_generations: list[int] = Field(
        default_factory=list, description="Generations whose children were proposed."
    )
    trained_folders: int = Field(default=0, description="Candidate folders holding a finished training.")
    finished: bool = Field(default=False, description="The evolve summary is written (the flow returned).")
    stopped: str = ""
    per_generation: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def fraction(self) -> float:
        if self.finished:
            return 1.0
        if not self.total_generations:
            return 0.0 if self.completed_generation < 0 else 1.0
        return max(0.0, min(1.0, (self.completed_generation + 1) / (self.total_generations + 1)))


def progress(run_dir: Path, total_generations: int | None = None) -> Progress:
    """Generations done, per-generation counts (fully evaluated / stopped by the cascade / not
    trained / failed, best fitness: the highest mean val macro-F1 over folds)."""
    run = RunLayout.of(run_dir)
    state = read_json(run.state) or {}
    summary = read_json(run.summary) or {}
    launch = read_json(run.launch_file) or {}
    total = total_generations if total_generations is not None else launch.get("generations")
    proposed = run.proposed_generations()
    trained = sum(1 for folder in run.candidate_folders() if (folder / METRICS_FILE).is_file())
    per_gen: dict[int, dict[str, Any]] = {}
    for i in load_population(run):
        row = per_gen.setdefault(
            i.generation,
            {
                "generation": i.generation,
                "candidates": 0,
                "ok": 0,
                "screened": 0,
                "not_trained": 0,
                "failed": 0,
                "best_fitness": None,
            },
        )
        row["candidates"] += 1
        if i.trained:
            row["ok"] += 1
            row["best_fitness"] = max(row["best_fitness"] or 0.0, round(i.f1, 4))
        elif i.stage == "screened":
            row["screened"] += 1
        elif i.status in Status.NOT_TRAINED:
            row["not_trained"] += 1
        else:
            row["failed"] += 1
    evolve = summary.get("evolve") or {}
    return Progress(
        completed_generation=int(state.get("completed_generation", -1)),
        total_generations=total,
        proposed_generations=proposed,
        trained_folders=trained,
        finished=bool(evolve),
        stopped=state.get("stopped", "") or evolve.get("stopped", "") or "",
        per_generation=[per_gen[g] for g in sorted(per_gen)],
    )


def leaderboard(individuals: list[Individual]) -> list[dict[str, Any]]:
    """Every candidate, fully evaluated ones first by fitness, then those the cascade stopped (the
    ``evolve-leaderboard`` artifact's rows: fitness ± SE, folds, stage, test), with ``front``."""
    front = {i.id for i in pareto_front(individuals)}
    return [row | {"front": row["id"] in front} for row in leaderboard_rows(individuals)]


def fitness_kind(run_dir: Path, individuals: list[Individual]) -> str:
    """How the run measures fitness, in words: from the evolve summary, else the most folds any
    candidate has (``3-fold cross-validation over train + val`` or ``single val split``)."""
    fitness = ((read_json(RunLayout.of(run_dir).summary) or {}).get("evolve") or {}).get("fitness")
    if not fitness:
        folds = max((len(i.fold_f1) for i in individuals), default=1)
        fitness = {"kind": "cv" if folds > 1 else "split", "folds": folds}
    return fitness_kind_text(fitness)


def pareto_points(individuals: list[Individual]) -> list[dict[str, Any]]:
    """Fully evaluated candidates as plot points (the cascade's screened ones have no fitness): params,
    fitness (``val_macro_f1``, the mean over folds) with its SE and text, folds, test macro-F1,
    generation, seed or child, on the front."""
    front = {i.id for i in pareto_front(individuals)}
    return [
        {
            "id": i.id,
            "params": i.params,
            "val_macro_f1": round(i.f1, 4),
            "fitness_se": None if i.fitness_se is None else round(i.fitness_se, 4),
            "fitness": fitness_text(i.f1, i.fitness_se),
            "folds": folds_text(i.fold_f1),
            "test_macro_f1": None if i.test_macro_f1 is None else round(i.test_macro_f1, 4),
            "generation": i.generation,
            "kind": "seed" if i.generation == 0 else "child",
            "front": i.id in front,
            "operator": i.operator,
        }
        for i in individuals
        if i.trained
    ]


def program_source(run_dir: Path, candidate_id: str) -> str | None:
    """The program as the orchestrator saved it (``programs/<id>.py``), else the candidate folder's copy."""
    run = RunLayout.of(run_dir)
    if run.program(candidate_id).is_file():
        return run.read_program(candidate_id)
    try:
        return (run.candidate(candidate_id) / PROGRAM_FILE).read_text()
    except (OSError, UnicodeDecodeError):
        return None


class CandidateDetail(BaseModel):
    """One candidate: its record, code, sandbox verdict and diffs against each parent."""

    individual: Individual
    source: str | None = None
    metrics: dict[str, Any] | None = Field(
        default=None, description="candidates/<id>/metrics.json (the orchestrator's verdict)."
    )
    diffs: dict[str, str] = Field(
        default_factory=dict, description="Parent id -> unified diff parent -> this candidate."
    )


def candidate_detail(
    run_dir: Path, candidate_id: str, individuals: list[Individual] | None = None
) -> CandidateDetail | None:
    """Code, metrics and parent diffs of ``candidate_id``; None if the run does not know it."""
    run = RunLayout.of(run_dir)
    people = {i.id: i for i in (individuals if individuals is not None else load_population(run))}
    individual = people.get(candidate_id)
    if individual is None:
        return None
    source = program_source(run, candidate_id)
    diffs = {}
    for parent in individual.parents:
        parent_source = program_source(run, parent)
        if source is not None and parent_source is not None:
            diffs[parent] = program_diff(parent_source, source, parent, candidate_id)
    return CandidateDetail(
        individual=individual, source=source, metrics=read_json(run.candidate(candidate_id) / METRICS_FILE), diffs=diffs
    )


class CompressionTable(BaseModel):
    """One compressed candidate's comparison table (rows of ``table_rows``)."""

    candidate: str
    status: str
    reason: str = ""
    best: str | None = None
    rows: list[dict[str, Any]] = Field(default_factory=list)
    threads: str | None = None


def compression_tables(run_dir: Path) -> list[CompressionTable]:
    """Every ``compression/<candidate>/compression.json`` of the run, as tables."""
    tables = []
    for path in RunLayout.of(run_dir).compression_reports():
        try:
            report = CompressionReport.model_validate_json(path.read_text())
        except (OSError, ValidationError, ValueError):
            continue
        tables.append(
            CompressionTable(
                candidate=report.candidate,
                status=report.status,
                reason=report.reason,
                best=report.best,
                rows=table_rows(report),
                threads=report.environment.get("threads"),
            )
        )
    return tables
