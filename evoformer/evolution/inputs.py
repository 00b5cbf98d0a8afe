"""What an evolution run starts from: the seed programs, the prelude, and the hash of the
settings that shape its population (a resumed run must have the same)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from evoformer.candidates.job import TrainConfig
from evoformer.candidates.program import CandidateProgram
from evoformer.candidates.static_check import StaticCheckConfig
from evoformer.errors import UserError
from evoformer.evolution.operators import OperatorConfig
from evoformer.evolution.population import SelectionConfig
from evoformer.sandbox.limits import SandboxLimits
from evoformer.seeds import seed_files


class EvolutionError(UserError, RuntimeError):
    """The run cannot go on (no seed trained, no parent left, an unreadable seed or prelude)."""


class PopulationSettings(Protocol):
    """The settings that shape a population (``EvolveParams`` has them)."""

    children: int
    seed: int
    operator: OperatorConfig
    selection: SelectionConfig
    train: TrainConfig
    limits: SandboxLimits
    static: StaticCheckConfig


def load_seeds(folder: str | None) -> list[CandidateProgram]:
    """The seed programs, with a clear error for an unreadable file."""
    programs = []
    try:
        paths = seed_files(folder)
    except FileNotFoundError as exc:
        raise EvolutionError(str(exc)) from exc
    for path in paths:
        try:
            programs.append(CandidateProgram(name=f"seed-{path.stem}", source=path.read_text()))
        except (UnicodeDecodeError, OSError) as exc:
            raise EvolutionError(f"cannot read seed {path}: {exc}") from exc
    return programs


def read_prelude(path: str | None) -> str:
    """The prelude's text ('' without one), with a clear error for a missing or unreadable file."""
    if not path:
        return ""
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvolutionError(f"cannot read prelude {path}: {exc}") from exc


@dataclass(frozen=True, eq=False)
class EvolutionInputs:
    """The seed programs and the prelude prepended to every program."""

    seeds: list[CandidateProgram]
    prelude: str = ""

    @classmethod
    def load(cls, seed_folder: str | None, prelude_path: str | None) -> EvolutionInputs:
        return cls(seeds=load_seeds(seed_folder), prelude=read_prelude(prelude_path))


def settings_hash(settings: PopulationSettings, seeds: list[CandidateProgram], prelude: str, features_path: str) -> str:
    """What shapes the population. Generations, budgets and parallelism are left out, so a run
    can be resumed with more generations or another LLM budget."""
    op = settings.operator
    payload = {
        "children": settings.children,
        "seed": settings.seed,
        "selection": settings.selection.model_dump(),
        "operator": [op.temperatures, op.feedback_failures, op.max_edits, op.llm.model],
        "train": settings.train.model_dump(),
        "limits": settings.limits.model_dump(),
        "static": settings.static.model_dump(),
        "seeds": [(s.name, s.program_hash()) for s in seeds],
        "prelude": prelude,
        "features": Path(features_path).name,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
