"""The evolution's training queue without Prefect and without training anything: a fake trainer
answers every request. Reuse of a finished training, a cached result from another run's folder
copied in, a cached result whose folder is gone trained again, failures and parallelism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evoformer.candidates.evaluate import CandidateMetrics, CandidateResult
from evoformer.candidates.job import METRICS_FILE, WEIGHTS_FILE, Status, TrainConfig
from evoformer.candidates.program import CandidateProgram
from evoformer.config.fitness import CascadeConfig, FitnessConfig
from evoformer.data.folds import own_split
from evoformer.evolution.fitness import FitnessEvaluator
from evoformer.evolution.population import Individual
from evoformer.evolution.state import finished_training, mark_trained
from evoformer.evolution.training_queue import TrainingJob, TrainingQueue, TrainingRequest, TrainingSetup
from evoformer.layout import TRAIN_KEY_FILE, RunLayout
from evoformer.metrics import ClassificationMetrics
from evoformer.sandbox.limits import SandboxLimits

PROGRAM = (
    "import torch.nn as nn\n\ndef build_model(input_dim, num_classes):\n    return nn.Linear(input_dim, num_classes)\n"
)


def _metrics(f1: float) -> ClassificationMetrics:
    return ClassificationMetrics(macro_f1=f1, weighted_f1=f1, accuracy=f1, per_class_f1={"SUPPORTS": f1}, support=10)


def _result(name: str, folder: Path, status: Status = Status.OK, f1: float = 0.5) -> CandidateResult:
    metrics = None
    if status == Status.OK:
        metrics = CandidateMetrics(
            params=1234,
            val=_metrics(f1),
            test=_metrics(f1 - 0.1),
            latency_ms={"batch1": 1.0, "batch64": 2.0},
            train_seconds=1.5,
            wall_seconds=2.0,
            epochs=2,
            best_epoch=1,
        )
    return CandidateResult(
        name=name,
        program_hash="h",
        status=status,
        reason="" if status == Status.OK else "it broke",
        folder=str(folder.resolve()),
        metrics=metrics,
    )


def _trained_folder(folder: Path, result: CandidateResult, key: str) -> None:
    """What a finished training leaves in its folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / WEIGHTS_FILE).write_bytes(b"weights of " + result.name.encode())
    (folder / METRICS_FILE).write_text(result.model_dump_json())
    mark_trained(folder, key)


class FakeTrainer:
    """Answers each request with ``answer(request)`` (a result, or an exception to raise); by
    default it "trains" into the request's folder. Records the requests and the peak parallelism."""

    def __init__(self, answer=None, f1: float = 0.5) -> None:
        self.answer = answer or (lambda request: self.train_here(request))
        self.f1 = f1
        self.requests: list[TrainingRequest] = []
        self.outcomes: dict[int, object] = {}
        self.running_peak = 0

    def train_here(self, request: TrainingRequest) -> CandidateResult:
        result = _result(request.program.name, request.folder, f1=self.f1)
        _trained_folder(request.folder, result, request.key)
        return result

    def submit(self, request: TrainingRequest) -> int:
        self.requests.append(request)
        handle = len(self.requests)
        self.outcomes[handle] = self.answer(request)
        return handle

    def next_done(self, running: list[int]) -> int:
        self.running_peak = max(self.running_peak, len(running))
        return running[-1]  # the newest first: results do not come back in order

    def result(self, handle: int) -> CandidateResult:
        outcome = self.outcomes[handle]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def _setup(run_dir: Path) -> TrainingSetup:
    labels = {split: np.zeros(4, dtype=np.int64) for split in ("train", "val", "test")}
    return TrainingSetup(
        RunLayout(run_dir), "/features/minilm-L128-abc", labels, TrainConfig(max_epochs=1), SandboxLimits()
    )


def _train(setup: TrainingSetup, trainer: FakeTrainer, max_parallel: int, jobs: list[TrainingJob]) -> list[Individual]:
    """Evaluate ``jobs`` on the run's own split with no cascade: one training each."""
    config = FitnessConfig(folds=1, cascade=CascadeConfig(enabled=False))
    return FitnessEvaluator(TrainingQueue(setup, trainer, max_parallel), [own_split()], config).evaluate(jobs, [])


def _key(setup: TrainingSetup, job: TrainingJob) -> str:
    return setup.request(job.program, setup.layout.candidate(job.id), job.id).key


def _job(candidate_id: str, width: int = 8) -> TrainingJob:
    source = PROGRAM.replace(
        "nn.Linear(input_dim, num_classes)",
        f"nn.Sequential(nn.Linear(input_dim, {width}), nn.Linear({width}, num_classes))",
    )
    individual = Individual(
        id=candidate_id, generation=1, parents=["seed-a"], operator="ast-mutation", status=Status.PENDING
    )
    return TrainingJob(individual=individual, program=CandidateProgram(name=candidate_id, source=source))


def test_trains_every_job_and_records_its_metrics(tmp_path) -> None:
    setup, trainer = _setup(tmp_path / "run"), FakeTrainer(f1=0.6)
    jobs = [_job(f"g01-c0{i}", 8 + i) for i in range(4)]
    people = _train(setup, trainer, 2, jobs)
    assert [p.id for p in people] == [j.id for j in jobs]  # in the order of the jobs, whatever finished first
    assert trainer.running_peak == 2 and not any(r.refresh for r in trainer.requests)
    for person in people:
        assert person.status == Status.OK and person.trained and person.params == 1234 and person.val_macro_f1 == 0.6
        assert person.folder == str(setup.layout.candidate(person.id).resolve()) and person.wall_seconds is not None
        assert (Path(person.folder) / TRAIN_KEY_FILE).is_file()


def test_a_finished_training_in_the_run_folder_is_reused_without_submitting(tmp_path) -> None:
    setup = _setup(tmp_path / "run")
    done, todo = _job("g01-c00"), _job("g01-c01", 16)
    _trained_folder(
        setup.layout.candidate(done.id),
        _result(done.id, setup.layout.candidate(done.id), f1=0.7),
        _key(setup, done),
    )
    trainer = FakeTrainer()
    people = _train(setup, trainer, 1, [done, todo])
    assert [r.program.name for r in trainer.requests] == [todo.id]
    assert people[0].status == Status.OK and people[0].val_macro_f1 == 0.7


def test_a_refreshing_evaluator_trains_a_finished_training_again(tmp_path) -> None:
    """A retrain: the finished training in the folder is not reused, and every request names its candidate."""
    setup = _setup(tmp_path / "run")
    job = _job("g01-c00")
    folder = setup.layout.candidate(job.id)
    _trained_folder(folder, _result(job.id, folder, f1=0.7), _key(setup, job))
    trainer = FakeTrainer(f1=0.4)
    config = FitnessConfig(folds=1, cascade=CascadeConfig(enabled=False))
    queue = TrainingQueue(setup, trainer, 1)
    (person,) = FitnessEvaluator(queue, [own_split()], config, refresh=True).evaluate([job], [])
    (request,) = trainer.requests
    assert request.refresh and request.candidate == job.id and person.val_macro_f1 == 0.4


def test_a_folder_trained_under_another_key_is_trained_again(tmp_path) -> None:
    setup = _setup(tmp_path / "run")
    job = _job("g01-c00")
    folder = setup.layout.candidate(job.id)
    _trained_folder(folder, _result(job.id, folder, f1=0.7), "candidate:another-key")
    trainer = FakeTrainer(f1=0.4)
    (person,) = _train(setup, trainer, 1, [job])
    assert len(trainer.requests) == 1 and person.val_macro_f1 == 0.4
    assert (folder / TRAIN_KEY_FILE).read_text() == _key(setup, job)


def test_a_cached_result_from_another_run_is_copied_into_this_run(tmp_path) -> None:
    setup = _setup(tmp_path / "run")
    job = _job("g01-c00")
    elsewhere = tmp_path / "other-run" / "candidates" / job.id
    cached = _result(job.id, elsewhere, f1=0.8)
    _trained_folder(elsewhere, cached, _key(setup, job))
    trainer = FakeTrainer(answer=lambda request: cached)  # what the cache hands back: trained in the other folder
    (person,) = _train(setup, trainer, 1, [job])
    here = setup.layout.candidate(job.id)
    assert len(trainer.requests) == 1 and person.status == Status.OK and person.val_macro_f1 == 0.8
    assert person.folder == str(here.resolve())
    assert (here / WEIGHTS_FILE).read_bytes() == (elsewhere / WEIGHTS_FILE).read_bytes()
    assert json.loads((here / METRICS_FILE).read_text())["folder"] == str(here.resolve())
    assert finished_training(here, _key(setup, job)) is not None  # a later resume reuses it
    assert json.loads((elsewhere / METRICS_FILE).read_text())["folder"] == str(
        elsewhere.resolve()
    )  # the other run is untouched


@pytest.mark.parametrize("how", ["deleted", "retrained"])
def test_a_cached_result_whose_folder_is_gone_is_trained_again_without_the_cache(tmp_path, how) -> None:
    setup = _setup(tmp_path / "run")
    job = _job("g01-c00")
    elsewhere = tmp_path / "other-run" / "candidates" / job.id
    if how == "retrained":  # the folder is there, but holds another training now
        _trained_folder(elsewhere, _result(job.id, elsewhere), "candidate:another-key")
    stale = _result(job.id, elsewhere, f1=0.8)
    trainer = FakeTrainer()
    trainer.answer = lambda request: trainer.train_here(request) if request.refresh else stale
    (person,) = _train(setup, trainer, 1, [job])
    assert [r.refresh for r in trainer.requests] == [False, True]
    assert (
        person.status == Status.OK
        and person.val_macro_f1 == 0.5
        and person.folder == str(setup.layout.candidate(job.id).resolve())
    )


def test_a_refreshed_training_that_still_lands_elsewhere_does_not_loop(tmp_path) -> None:
    setup = _setup(tmp_path / "run")
    job = _job("g01-c00")
    stale = _result(job.id, tmp_path / "gone" / job.id)
    trainer = FakeTrainer(answer=lambda request: stale)
    (person,) = _train(setup, trainer, 1, [job])
    assert len(trainer.requests) == 2 and person.status == Status.SANDBOX_ERROR and "another folder" in person.reason


def test_failures_are_recorded_and_only_lasting_outcomes_are_marked_trained(tmp_path) -> None:
    setup = _setup(tmp_path / "run")
    broken, killed, infra = _job("g01-c00", 8), _job("g01-c01", 16), _job("g01-c02", 32)

    def answer(request: TrainingRequest):
        name = request.program.name
        if name == infra.id:
            return RuntimeError("the worker died " + "x" * 1000)
        status = Status.RUNTIME_ERROR if name == broken.id else Status.KILLED
        result = _result(name, request.folder, status=status)
        request.folder.mkdir(parents=True, exist_ok=True)
        (request.folder / METRICS_FILE).write_text(result.model_dump_json())
        return result

    people = {p.id: p for p in _train(setup, FakeTrainer(answer=answer), 3, [broken, killed, infra])}
    assert people[broken.id].status == Status.RUNTIME_ERROR and people[broken.id].reason == "it broke"
    assert (setup.layout.candidate(broken.id) / TRAIN_KEY_FILE).is_file()  # deterministic: a resume reuses it
    assert (
        people[killed.id].status == Status.KILLED and not (setup.layout.candidate(killed.id) / TRAIN_KEY_FILE).exists()
    )
    assert people[infra.id].status == Status.SANDBOX_ERROR and len(people[infra.id].reason) == 500
    assert all(p.status in Status.FAILED for p in people.values())


def test_status_values_and_subsets() -> None:
    assert {s.value for s in Status.TRAINING} == {
        "ok",
        "rejected",
        "build_error",
        "runtime_error",
        "timeout",
        "killed",
        "invalid_output",
    }
    assert Status.NOT_TRAINED == {"rejected", "duplicate", "proposal_failed"}
    assert Status.OK not in Status.FAILED and not (Status.FAILED & Status.NOT_TRAINED)
    assert Status.FAILED | Status.NOT_TRAINED | {Status.OK} == set(Status)
    assert Status.PROGRAM_FAULTS <= Status.TRAINING and Status.TRANSIENT == {"killed"}
    # Saved JSON stays readable and is written as before.
    person = Individual.model_validate({"id": "a", "generation": 0, "operator": "seed", "status": "proposal_failed"})
    assert (
        person.status is Status.PROPOSAL_FAILED and json.loads(person.model_dump_json())["status"] == "proposal_failed"
    )
    assert f"{Status.OK}" == "ok" and json.dumps({"s": Status.OK}) == '{"s": "ok"}'


def test_run_layout_names_every_path(tmp_path) -> None:
    layout = RunLayout(tmp_path / "r1")
    assert layout.run_id == "r1" and RunLayout.of(layout) is layout and RunLayout.of(str(tmp_path / "r1")) == layout
    assert layout.summary == tmp_path / "r1" / "summary.json"
    assert layout.split_table("val") == tmp_path / "r1" / "data" / "val.parquet"
    assert layout.candidate("g01-c02") == tmp_path / "r1" / "candidates" / "g01-c02"
    assert layout.program("g01-c02") == tmp_path / "r1" / "programs" / "g01-c02.py"
    assert layout.state == tmp_path / "r1" / "evolution" / "state.json"
    assert layout.proposals(3) == tmp_path / "r1" / "evolution" / "proposals-g03.json"
    assert (layout.lineage.name, layout.pareto_plot.name, layout.report.name) == (
        "lineage.json",
        "pareto.png",
        "report.html",
    )
    assert layout.llm_usage == tmp_path / "r1" / "llm" / "usage.json"
    assert layout.compression("g01-c02") == tmp_path / "r1" / "compression" / "g01-c02"
    assert layout.launch_file == tmp_path / "r1" / "ui" / "launch.json"
    assert (
        layout.read_program("g01-c02") is None
        and layout.candidate_folders() == []
        and layout.proposed_generations() == []
    )
    layout.write_program("g01-c02", "x = 1\n")
    layout.proposals(2).parent.mkdir(parents=True)
    for generation in (2, 1):
        layout.proposals(generation).write_text("[]")
    assert layout.read_program("g01-c02") == "x = 1\n" and layout.proposed_generations() == [1, 2]
