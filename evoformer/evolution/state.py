"""What an evolution run keeps on disk so a killed run resumes where it stopped (paths: see
:class:`~evoformer.layout.RunLayout`).

- ``evolution/state.json``: the population after the last completed generation, with the hash of
  the settings that shaped it (a resumed run must use the same ones).
- ``evolution/proposals-gNN.json``: a generation's children, saved before they train.
- ``programs/<id>.py``: every candidate's program as the orchestrator received it.
- ``lineage.json``: every candidate with its parents, operator, temperature and prompt hash.
- ``candidates/<id>/train_key``: written after a training finished; a resumed run reuses that
  candidate's ``metrics.json`` instead of training it again.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from evoformer.candidates.evaluate import CandidateResult
from evoformer.candidates.job import METRICS_FILE
from evoformer.evolution.operators import Proposal
from evoformer.evolution.population import Individual
from evoformer.files import write_text_atomic
from evoformer.layout import TRAIN_KEY_FILE, RunLayout

Run = Path | str | RunLayout


class EvolutionState(BaseModel):
    """The population after ``completed_generation`` (-1: nothing done, 0: seeds trained)."""

    settings_hash: str
    operator: str
    completed_generation: int = -1
    individuals: list[Individual] = Field(default_factory=list)
    stopped: str = Field(default="", description="Why proposing stopped early (LLM budget), if it did.")


class ResumeMismatch(ValueError):
    """The run folder holds a run made with other settings."""


def load_state(run: Run, settings_hash: str, operator: str) -> EvolutionState:
    """The saved state of this run, or a fresh one; refuse a run made with other settings."""
    layout = RunLayout.of(run)
    path = layout.state
    if not path.is_file():
        return EvolutionState(settings_hash=settings_hash, operator=operator)
    state = EvolutionState.model_validate_json(path.read_text())
    if state.settings_hash != settings_hash or state.operator != operator:
        raise ResumeMismatch(
            f"{layout.root} holds an evolution run made with other settings (or operator {state.operator!r}); "
            "resume it with the same parameters, or start a new --run-id"
        )
    return state


def save_state(run: Run, state: EvolutionState) -> None:
    """Write the state and the lineage atomically."""
    layout = RunLayout.of(run)
    write_text_atomic(layout.state, state.model_dump_json(indent=2))
    write_text_atomic(layout.lineage, json.dumps([i.model_dump(mode="json") for i in state.individuals], indent=2))


def save_proposals(run: Run, generation: int, proposals: list[Proposal]) -> None:
    """Keep a generation's children before training them: a resumed run trains these very ones."""
    write_text_atomic(
        RunLayout.of(run).proposals(generation), json.dumps([p.model_dump(mode="json") for p in proposals], indent=2)
    )


def load_proposals(run: Run, generation: int) -> list[Proposal] | None:
    path = RunLayout.of(run).proposals(generation)
    if not path.is_file():
        return None
    return [Proposal.model_validate(item) for item in json.loads(path.read_text())]


def mark_trained(folder: Path, key: str) -> None:
    """Record that ``folder`` holds the finished training for ``key``."""
    write_text_atomic(Path(folder) / TRAIN_KEY_FILE, key)


def finished_training(folder: Path, key: str) -> CandidateResult | None:
    """The finished result in ``folder`` if it was trained under ``key`` and is not transient."""
    folder = Path(folder)
    key_file, metrics = folder / TRAIN_KEY_FILE, folder / METRICS_FILE
    if not key_file.is_file() or key_file.read_text() != key or not metrics.is_file() or metrics.is_symlink():
        return None
    try:
        result = CandidateResult.model_validate_json(metrics.read_text())
    except (ValidationError, OSError):
        return None
    return None if result.transient else result


def load_population(run: Run) -> list[Individual]:
    """The population as last saved: ``lineage.json``, else ``evolution/state.json`` (empty before
    the seeds are trained); a half-written file or an invalid row is skipped."""
    layout = RunLayout.of(run)
    for path, key in ((layout.lineage, None), (layout.state, "individuals")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        people = []
        for row in (data if key is None else data.get(key, [])) or []:
            try:
                people.append(Individual.model_validate(row))
            except ValidationError:
                continue
        return people
    return []
