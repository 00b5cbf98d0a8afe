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
from evoformer.candidates.static_check import StaticCheckConfig, check_source
from evoformer.errors import UserError
from evoformer.evolution.operators import OperatorConfig
from evoformer.evolution.population import SelectionConfig
from evoformer.sandbox.limits import SandboxLimits
from evoformer.seeds import SEED_DIR, seed_files


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
        except UnicodeDecodeError as exc:
            raise EvolutionError(f"seed {path}: not UTF-8 text (byte {exc.start}): a seed is a Python program") from exc
        except OSError as exc:
            raise EvolutionError(f"cannot read seed {path}: {exc}") from exc
    return programs


def read_prelude(path: str | None) -> str:
    """The prelude's text ('' without one), with a clear error for a missing or unreadable file."""
    if not path:
        return ""
    try:
        return Path(path).read_text()
    except UnicodeDecodeError as exc:
        raise EvolutionError(f"prelude {path}: not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise EvolutionError(f"cannot read prelude {path}: {exc}") from exc


def source_problems(source: str, static: StaticCheckConfig, require_entry: bool = True) -> list[str]:
    """What stops ``source`` from being a program (the static check's reasons, syntax errors with
    their line), empty for none."""
    try:
        return check_source(source, static, require_entry=require_entry).reasons
    except ValueError as exc:  # e.g. NUL bytes: a binary file the parser refuses outright
        return [f"not a Python program: {exc}"]


@dataclass(frozen=True, eq=False)
class EvolutionInputs:
    """The seed programs and the prelude prepended to every program."""

    seeds: list[CandidateProgram]
    prelude: str = ""

    @classmethod
    def load(
        cls, seed_folder: str | None, prelude_path: str | None, static: StaticCheckConfig | None = None
    ) -> EvolutionInputs:
        """Read and check the prelude and the seeds before any work is done.

        A prelude that fails the checks is an error naming the prelude (its own line numbers).
        Seeds that fail are left to be recorded as rejected, as in any generation, unless every
        seed fails: then the run cannot start, and the error names each seed file and its problem.
        """
        static = static or StaticCheckConfig()
        prelude = read_prelude(prelude_path)
        problems = source_problems(prelude, static, require_entry=False) if prelude else []
        if problems:
            raise EvolutionError(f"prelude {prelude_path}: {'; '.join(problems)}")
        seeds = load_seeds(seed_folder)
        broken = {}
        for seed in seeds:
            found = source_problems(seed.source, static) or source_problems(
                seed.model_copy(update={"prelude": prelude}).full_source(), static
            )
            if found:
                broken[seed.name] = found
        if len(broken) == len(seeds):
            folder = Path(seed_folder) if seed_folder else SEED_DIR  # a seed named seed-<stem> is <stem>.py
            lines = "; ".join(
                f"{folder / (name.removeprefix('seed-') + '.py')}: {', '.join(found)}" for name, found in broken.items()
            )
            raise EvolutionError(f"no seed program can run: {lines}")
        return cls(seeds=seeds, prelude=prelude)


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
