"""Where everything of a run lives: ``<runs_dir>/<run-id>/``. The one place a run folder's file
and folder names are written; every flow, task, report and GUI view asks a :class:`RunLayout`.

::

    summary.json                  every flow's summary (the data flow's at the top, others in sections)
    data/<split>.parquet          the claim-level split tables (labels: orchestrator side only)
    candidates/<id>/              a candidate's sandbox folder (program.py, weights, metrics.json, train_key):
                                  the model it keeps (with folds, the first fold's)
    folds/<id>/fold-<k>/          the other folds' trainings of a cross-validated candidate
    screening/<id>/               the cascade's short first-stage training of a child
    smoke/<id>/<n>/               the smoke runs (build, forward, backward) of an LLM child's drafts
    programs/<id>.py              the orchestrator's copy of every program, outside any sandbox folder
    evolution/state.json          the population after the last completed generation
    evolution/proposals-gNN.json  a generation's children, saved before they train
    evolution/folds.npz           the cross-validation folds (index sets into train + val)
    lineage.json                  every candidate with its parents, operator and outcome
    pareto.png                    val macro-F1 against params
    report.html                   the self-contained run report
    llm/                          the LLM reply cache and usage.json
    compression/<id>/             one compressed candidate (compression.json and its variants)
    ui/                           what the GUI writes (launch.json, logs, uploaded seeds)

The files inside a candidate folder that the sandbox reads and writes are named in
:mod:`evoformer.candidates.job`; ``train_key`` is the orchestrator's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

SPLITS = ("train", "val", "test")
TRAIN_KEY_FILE = "train_key"
"""In a candidate folder: written after a training finished, holds the key it was trained under."""
COMPRESSION_REPORT_FILE = "compression.json"
"""In a compression folder: the report of every variant of one candidate."""

_PROPOSALS = re.compile(r"^proposals-g(\d+)\.json$")


@dataclass(frozen=True)
class RunLayout:
    """Every path of one run folder. Building one touches nothing on disk."""

    root: Path

    SUMMARY: ClassVar[str] = "summary.json"
    DATA_DIR: ClassVar[str] = "data"
    CANDIDATES_DIR: ClassVar[str] = "candidates"
    FOLDS_DIR: ClassVar[str] = "folds"
    SCREENING_DIR: ClassVar[str] = "screening"
    PROGRAMS_DIR: ClassVar[str] = "programs"
    EVOLUTION_DIR: ClassVar[str] = "evolution"
    STATE_FILE: ClassVar[str] = "state.json"
    LINEAGE_FILE: ClassVar[str] = "lineage.json"
    PARETO_FILE: ClassVar[str] = "pareto.png"
    REPORT_FILE: ClassVar[str] = "report.html"
    LLM_DIR: ClassVar[str] = "llm"
    USAGE_FILE: ClassVar[str] = "usage.json"
    COMPRESSION_DIR: ClassVar[str] = "compression"
    UI_DIR: ClassVar[str] = "ui"
    LAUNCH_FILE: ClassVar[str] = "launch.json"

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    @classmethod
    def of(cls, run: str | Path | RunLayout) -> RunLayout:
        """``run`` itself if it is a layout, else the layout of the folder it names."""
        return run if isinstance(run, RunLayout) else cls(run)

    @classmethod
    def under(cls, runs_dir: str | Path, run_id: str) -> RunLayout:
        return cls(Path(runs_dir) / run_id)

    @property
    def run_id(self) -> str:
        return self.root.name

    # ---- every flow -------------------------------------------------------------------------

    @property
    def summary(self) -> Path:
        return self.root / self.SUMMARY

    @property
    def data_dir(self) -> Path:
        return self.root / self.DATA_DIR

    def split_table(self, split: str) -> Path:
        """``data/<split>.parquet``."""
        return self.data_dir / f"{split}.parquet"

    # ---- candidates and their programs --------------------------------------------------------

    @property
    def candidates_dir(self) -> Path:
        return self.root / self.CANDIDATES_DIR

    def candidate(self, candidate_id: str) -> Path:
        """``candidates/<id>/``: the candidate's sandbox folder."""
        return self.candidates_dir / candidate_id

    def fold_training(self, candidate_id: str, fold: int) -> Path:
        """Where fold ``fold`` of a candidate trains: its own folder for fold 0 (the model it
        keeps), ``folds/<id>/fold-<k>/`` for the others."""
        if fold == 0:
            return self.candidate(candidate_id)
        return self.root / self.FOLDS_DIR / candidate_id / f"fold-{fold}"

    def screening(self, candidate_id: str) -> Path:
        """``screening/<id>/``: the cascade's first-stage training."""
        return self.root / self.SCREENING_DIR / candidate_id

    def smoke(self, candidate_id: str) -> Path:
        """``smoke/<id>/``: the smoke runs of an LLM child's drafts (one sub-folder each)."""
        return self.root / "smoke" / candidate_id

    def candidate_folders(self) -> list[Path]:
        """Every existing candidate folder, by name."""
        if not self.candidates_dir.is_dir():
            return []
        return sorted(p for p in self.candidates_dir.iterdir() if p.is_dir())

    @property
    def programs_dir(self) -> Path:
        return self.root / self.PROGRAMS_DIR

    def program(self, candidate_id: str) -> Path:
        """``programs/<id>.py``: the program as the orchestrator received it."""
        return self.programs_dir / f"{candidate_id}.py"

    def write_program(self, candidate_id: str, source: str) -> Path:
        path = self.program(candidate_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        return path

    def read_program(self, candidate_id: str) -> str | None:
        """The orchestrator's copy of the program (never a file a sandbox could write); None when
        it is missing or unreadable."""
        try:
            return self.program(candidate_id).read_text()
        except (OSError, UnicodeDecodeError):
            return None

    # ---- evolution ------------------------------------------------------------------------------

    @property
    def evolution_dir(self) -> Path:
        return self.root / self.EVOLUTION_DIR

    @property
    def state(self) -> Path:
        """``evolution/state.json``."""
        return self.evolution_dir / self.STATE_FILE

    @property
    def folds_file(self) -> Path:
        """``evolution/folds.npz``: the cross-validation folds of the run (the orchestrator's copy;
        compression fine-tunes and stops on the kept model's fold)."""
        return self.evolution_dir / "folds.npz"

    def proposals(self, generation: int) -> Path:
        """``evolution/proposals-gNN.json``."""
        return self.evolution_dir / f"proposals-g{generation:02d}.json"

    def proposed_generations(self) -> list[int]:
        """Generations whose children were saved, in order."""
        if not self.evolution_dir.is_dir():
            return []
        found = (_PROPOSALS.match(p.name) for p in self.evolution_dir.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    @property
    def lineage(self) -> Path:
        return self.root / self.LINEAGE_FILE

    @property
    def pareto_plot(self) -> Path:
        return self.root / self.PARETO_FILE

    @property
    def report(self) -> Path:
        return self.root / self.REPORT_FILE

    @property
    def llm_dir(self) -> Path:
        """``llm/``: the reply cache and the usage ledger."""
        return self.root / self.LLM_DIR

    @property
    def llm_usage(self) -> Path:
        return self.llm_dir / self.USAGE_FILE

    # ---- compression ----------------------------------------------------------------------------

    @property
    def compression_dir(self) -> Path:
        return self.root / self.COMPRESSION_DIR

    def compression(self, candidate_id: str) -> Path:
        """``compression/<id>/``: where one candidate's variants are made."""
        return self.compression_dir / candidate_id

    def compression_reports(self) -> list[Path]:
        """Every ``compression/<id>/compression.json``, by candidate."""
        if not self.compression_dir.is_dir():
            return []
        return sorted(self.compression_dir.glob(f"*/{COMPRESSION_REPORT_FILE}"))

    # ---- the GUI --------------------------------------------------------------------------------

    @property
    def ui_dir(self) -> Path:
        return self.root / self.UI_DIR

    @property
    def launch_file(self) -> Path:
        """``ui/launch.json``: the GUI's launch record (settings, never the key)."""
        return self.ui_dir / self.LAUNCH_FILE


def run_layouts(runs_dir: str | Path) -> list[RunLayout]:
    """A layout for every folder directly under ``runs_dir`` that holds a summary, by name."""
    root = Path(runs_dir)
    return [RunLayout(p.parent) for p in sorted(root.glob(f"*/{RunLayout.SUMMARY}"))] if root.is_dir() else []
