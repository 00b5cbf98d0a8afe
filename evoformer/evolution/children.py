"""Around training: every child's record, its program on disk, the static check and
de-duplication before it (exact copies by normalised AST hash, near-copies by structure hash); the
seeds as generation 0; what the operator sees of a parent; and adding a trained generation to the
population."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evoformer.candidates.job import Status
from evoformer.candidates.program import CandidateProgram
from evoformer.candidates.static_check import StaticCheckConfig, check_source
from evoformer.evolution.fitness import FitnessEvaluator
from evoformer.evolution.inputs import EvolutionError, EvolutionInputs
from evoformer.evolution.operators import ChildPlan, Proposal, parent_view, recent_failures
from evoformer.evolution.population import Individual, retire
from evoformer.evolution.prompt import ParentView
from evoformer.evolution.state import EvolutionState
from evoformer.evolution.training_queue import TrainingJob
from evoformer.layout import RunLayout


def seed_proposal(program: CandidateProgram) -> Proposal:
    """A seed program as generation 0's child without parents."""
    plan = ChildPlan(child_id=program.name, generation=0, index=0, parents=[], kind="mutation", rng_seed="")
    return Proposal(plan=plan, operator="seed", source=program.source)


def known_hashes(individuals: list[Individual]) -> dict[str, str]:
    """Program hash -> id of every candidate that holds its program (duplicates do not)."""
    return {i.program_hash: i.id for i in individuals if i.program_hash and i.status != Status.DUPLICATE}


@dataclass
class KnownPrograms:
    """Every program seen so far, each with the id of the candidate that holds it: by program hash
    (exact copies) and by structure hash (near-copies: the same once docstrings, comments and names
    are ignored, see :meth:`CandidateProgram.structure_hash`)."""

    programs: dict[str, str]
    structures: dict[str, str]

    @classmethod
    def of(cls, known: dict[str, str], layout: RunLayout, prelude: str) -> KnownPrograms:
        """``known`` (program hash -> id) and the structure hash of each of those candidates' saved
        programs, hashed with the prelude like any program; a missing program adds no structure hash."""
        structures: dict[str, str] = {}
        for candidate_id in known.values():
            source = layout.read_program(candidate_id)
            if source is not None:
                program = CandidateProgram(name=candidate_id, source=source, prelude=prelude)
                structures.setdefault(program.structure_hash(), candidate_id)
        return cls(known, structures)

    def copy_of(self, program_hash: str, structure_hash: str) -> tuple[str, str] | None:
        """The id of the candidate a program repeats and why, or None for a new program."""
        if program_hash in self.programs:
            return self.programs[program_hash], f"same normalised AST as {self.programs[program_hash]}"
        if structure_hash in self.structures:
            same = self.structures[structure_hash]
            return same, f"near-copy of {same}: the same program once docstrings, comments and names are ignored"
        return None

    def add(self, program_hash: str, structure_hash: str, candidate_id: str) -> None:
        self.programs[program_hash] = candidate_id
        self.structures[structure_hash] = candidate_id


def check_children(
    proposals: list[Proposal], known: dict[str, str], prelude: str, static: StaticCheckConfig, layout: RunLayout | Path
) -> tuple[list[Individual], list[TrainingJob]]:
    """Static checks and de-duplication; only new, clean children train.

    A child is a duplicate (``copy_of`` names the candidate it repeats) when its normalised AST equals
    that of a program in ``known`` or of an earlier child here, or when it does once docstrings,
    comments and names are ignored (the structure hashes of ``known``'s saved programs). Every written
    program is saved as ``programs/<id>.py``; ``known`` (hash -> id) gains the new ones.
    Returns the records of the children that do not train, and the jobs of those that do."""
    layout = RunLayout.of(layout)
    seen = KnownPrograms.of(known, layout, prelude)
    recorded, jobs = [], []
    for proposal in proposals:
        plan = proposal.plan
        individual = Individual(
            id=plan.child_id,
            generation=plan.generation,
            parents=plan.parents,
            operator=proposal.operator,
            temperature=proposal.temperature,
            prompt_hash=proposal.prompt_hash,
            description=proposal.description,
            repairs=proposal.repairs,
            proposal_seconds=proposal.seconds,
            status=Status.PROPOSAL_FAILED,
            reason=proposal.reason,
        )
        if proposal.source is None:
            recorded.append(individual)
            continue
        layout.write_program(plan.child_id, proposal.source)
        program = CandidateProgram(name=plan.child_id, source=proposal.source, prelude=prelude)
        try:
            individual.program_hash = program.program_hash()
            structure_hash = program.structure_hash()
            report = check_source(program.full_source(), static)
        except (RecursionError, MemoryError, ValueError) as exc:  # pathological sources, e.g. deeply nested
            recorded.append(
                individual.model_copy(
                    update={"status": Status.REJECTED, "reason": f"cannot analyse the program: {type(exc).__name__}"}
                )
            )
            continue
        if not report.ok:
            recorded.append(
                individual.model_copy(update={"status": Status.REJECTED, "reason": "; ".join(report.reasons)})
            )
        elif copy := seen.copy_of(individual.program_hash, structure_hash):
            recorded.append(
                individual.model_copy(update={"status": Status.DUPLICATE, "copy_of": copy[0], "reason": copy[1]})
            )
        else:
            seen.add(individual.program_hash, structure_hash, plan.child_id)
            jobs.append(
                TrainingJob(
                    individual=individual.model_copy(update={"status": Status.PENDING, "reason": ""}), program=program
                )
            )
    return recorded, jobs


def train_seeds(inputs: EvolutionInputs, static: StaticCheckConfig, evaluator: FitnessEvaluator) -> list[Individual]:
    """Generation 0: the seeds, checked and de-duplicated like any child, then evaluated in full
    (the cascade screens them but never stops one). Raises :class:`EvolutionError` when none
    trained: there would be no parent."""
    layout = evaluator.queue.setup.layout
    recorded, jobs = check_children([seed_proposal(p) for p in inputs.seeds], {}, inputs.prelude, static, layout)
    people = recorded + evaluator.evaluate(jobs, [], always_promote=True)
    if not any(i.trained for i in people):
        reasons = "; ".join(f"{i.id}: {i.status} {i.reason[:120]}" for i in people)
        raise EvolutionError(f"no seed program trained successfully: {reasons}")
    return people


def parent_views(state: EvolutionState, plan: ChildPlan, layout: RunLayout, feedback_failures: int) -> list[ParentView]:
    """What the operator sees of each parent of ``plan``: its saved program, metrics and recent failed children."""
    by_id = {i.id: i for i in state.individuals}
    views = []
    for parent in plan.parents:
        source = layout.read_program(parent)
        if source is None:
            raise FileNotFoundError(f"the program of parent {parent} is missing: {layout.program(parent)}")
        views.append(parent_view(by_id[parent], source, recent_failures(state.individuals, parent, feedback_failures)))
    return views


def add_generation(
    state: EvolutionState, proposals: list[Proposal], recorded: list[Individual], trained: list[Individual]
) -> None:
    """Retire the generation's parents and add its children (by id) to the population."""
    retire(state.individuals, {p for proposal in proposals for p in proposal.plan.parents})
    state.individuals += sorted(recorded + trained, key=lambda i: i.id)
