"""Cross-validated fitness: folds over train + val, the rows a fold reads, the cascade, the
fitness of a candidate and selection that respects its standard error. Fake trainings only,
except the last test, which trains a real program on a fold in the sandbox."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_training_queue import FakeTrainer, _job, _result, _setup, _trained_folder

from evoformer.candidates.evaluate import evaluate_candidate
from evoformer.candidates.job import FOLD_FILE, TRAIN_LABELS_FILE, Status, TrainConfig
from evoformer.candidates.program import CandidateProgram
from evoformer.config.fitness import CascadeConfig, FitnessConfig
from evoformer.data.errors import DataSourceError
from evoformer.data.folds import make_folds, own_split
from evoformer.evolution.fitness import FitnessEvaluator, fitness_of, promising, screening_config
from evoformer.evolution.population import Individual, SelectionConfig, dominates, pareto_front, rank
from evoformer.evolution.training_queue import TrainingQueue, TrainingRequest
from evoformer.features.store import PoolRows, SplitFeatures, load_split_features
from evoformer.labels import LABELS


def _frame(claims: int, pairs_per_claim: int, seed: int, prefix: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(claims):
        label = LABELS[int(rng.integers(len(LABELS)))]
        for p in range(pairs_per_claim):
            rows.append({"claim_id": f"{prefix}{c}", "claim": f"claim {prefix}{c}", "label": label, "evidence": str(p)})
    return pd.DataFrame(rows)


def test_folds_cover_the_pool_once_keep_claims_together_and_stratify() -> None:
    train, val = _frame(60, 5, 0, "t"), _frame(20, 5, 1, "v")
    pool = pd.concat([train, val], ignore_index=True)
    folds = make_folds(train, val, 3, seed=4)
    held = np.concatenate([f.val_index for f in folds])
    assert sorted(held) == list(range(len(pool)))  # every pool row validates exactly once
    for fold in folds:
        assert set(fold.train_index).isdisjoint(fold.val_index)
        assert len(fold.train_index) + len(fold.val_index) == len(pool)
        claims_in = set(pool.claim_id[fold.val_index]) & set(pool.claim_id[fold.train_index])
        assert not claims_in  # a claim's pairs all validate in the same fold
        share = pool.label[fold.val_index].value_counts(normalize=True)
        overall = pool.label.value_counts(normalize=True)
        assert (share - overall).abs().max() < 0.12
    again = make_folds(train, val, 3, seed=4)
    assert [f.digest() for f in again] == [f.digest() for f in folds]  # deterministic
    assert [f.digest() for f in make_folds(train, val, 3, seed=5)] != [f.digest() for f in folds]
    assert make_folds(train, val, 1)[0].index_sets is None and own_split().digest() == ""
    with pytest.raises(DataSourceError, match="too few for 5 folds"):
        make_folds(_frame(2, 3, 0, "t"), _frame(2, 3, 1, "v"), 5)


def test_a_fold_gets_its_own_labels_and_test_is_unchanged() -> None:
    train, val = _frame(30, 2, 0, "t"), _frame(10, 2, 1, "v")
    labels = {"train": np.arange(60) % 3, "val": (np.arange(20) + 1) % 3, "test": np.array([2, 2, 1])}
    fold = make_folds(train, val, 2)[1]
    got = fold.labels(labels)
    pool = np.concatenate([labels["train"], labels["val"]])
    assert np.array_equal(got["train"], pool[fold.train_index]) and np.array_equal(got["val"], pool[fold.val_index])
    assert np.array_equal(got["test"], labels["test"])
    assert own_split().labels(labels) is labels


def _split(lengths: list[int], dim: int, offset: float) -> SplitFeatures:
    total = sum(lengths)
    states = (np.arange(total * dim, dtype=np.float32).reshape(total, dim) + offset).astype(np.float16)
    return SplitFeatures(states=states, lengths=np.array(lengths), claim_lengths=np.ones(len(lengths), dtype=int))


def test_pool_rows_read_the_same_states_as_the_splits_they_come_from() -> None:
    a, b = _split([3, 1, 2], 4, 0.0), _split([2, 4], 4, 1000.0)
    rows = PoolRows([a, b], np.array([4, 0, 3]))  # b[1], a[0], b[0]
    assert len(rows) == 3 and rows.dim == 4 and list(rows.lengths) == [4, 3, 2]
    x, mask = rows.batch([0, 2])
    bx, bmask = b.batch([1, 0])
    assert np.array_equal(x, bx) and np.array_equal(mask, bmask)
    assert np.array_equal(bx[0], b.states[2:6].astype(np.float32)) and np.array_equal(bx[1, :2], b.states[0:2])
    assert bmask.tolist() == [[True] * 4, [True, True, False, False]] and not bx[1, 2:].any()
    x, _ = rows.batch([1])
    assert np.array_equal(x, a.batch([0])[0])
    with pytest.raises(ValueError, match="pool rows"):
        PoolRows([a, b], np.array([5]))


def test_fitness_is_the_mean_of_the_folds_with_its_standard_error() -> None:
    mean, se = fitness_of([0.40, 0.46, 0.43])
    assert mean == pytest.approx(0.43) and se == pytest.approx(np.std([0.40, 0.46, 0.43], ddof=1) / np.sqrt(3))
    assert fitness_of([0.5]) == (0.5, None)
    short = screening_config(TrainConfig(max_epochs=12, time_budget_s=120), CascadeConfig(budget_fraction=0.25))
    assert short.max_epochs == 3 and short.time_budget_s == 30
    assert screening_config(TrainConfig(max_epochs=1), CascadeConfig(budget_fraction=0.1)).max_epochs == 1


def _scored(f1_of):
    """A fake trainer whose val macro-F1 depends on the request (candidate, fold, stage)."""
    trainer = FakeTrainer()

    def answer(request: TrainingRequest):
        result = _result(request.program.name, request.folder, f1=f1_of(request))
        _trained_folder(request.folder, result, request.key)
        return result

    trainer.answer = answer
    return trainer


def test_the_cascade_screens_children_and_evaluates_the_promising_ones_on_every_fold(tmp_path) -> None:
    setup = _setup(tmp_path / "run")
    folds = make_folds(_frame(30, 2, 0, "t"), _frame(10, 2, 1, "v"), 3)
    screen = {"seed-a": 0.50, "g01-c00": 0.30, "g01-c01": 0.49, "g01-c02": 0.20, "g01-c03": 0.10}
    full = {0: 0.50, 1: 0.56, 2: 0.53}

    def f1_of(request: TrainingRequest) -> float:
        if request.label.endswith("-screen"):
            return screen[request.program.name]
        return full[request.fold.number]

    trainer = _scored(f1_of)
    config = FitnessConfig(folds=3, cascade=CascadeConfig(margin=0.02, top_fraction=0.25, budget_fraction=0.5))
    evaluator = FitnessEvaluator(TrainingQueue(setup, trainer, max_parallel=4), folds, config)
    (seed,) = evaluator.evaluate([_job("seed-a")], [], always_promote=True)
    assert seed.trained and seed.stage == "full" and seed.screen_f1 == 0.50
    assert seed.fold_f1 == [0.5, 0.56, 0.53] and seed.val_macro_f1 == pytest.approx(0.53)
    assert seed.fitness_se == pytest.approx(np.std([0.5, 0.56, 0.53], ddof=1) / np.sqrt(3))
    assert seed.folder == str(setup.layout.candidate("seed-a").resolve())  # fold 0's model is the one kept
    assert seed.test_macro_f1 == pytest.approx(0.4)
    trainer.requests.clear()

    children = [_job(f"g01-c0{n}", 8 + n) for n in range(4)]
    people = {p.id: p for p in evaluator.evaluate(children, [seed])}
    # g01-c01: within the margin of the front (seed 0.50 in stage 1); g01-c00: the top quarter
    # of the generation is one child (g01-c01 again), and 0.30 is far below the seed: stopped.
    assert {i for i, p in people.items() if p.trained} == {"g01-c01"}
    for stopped in ("g01-c00", "g01-c02", "g01-c03"):
        person = people[stopped]
        assert person.status == Status.OK and person.stage == "screened" and not person.trained
        assert person.val_macro_f1 is None and person.screen_f1 == screen[stopped] and person.params == 1234
    labels = [r.label for r in trainer.requests]
    assert labels[:4] == [f"g01-c0{n}-screen" for n in range(4)]
    assert sorted(labels[4:]) == ["g01-c01-fold0", "g01-c01-fold1", "g01-c01-fold2"]
    assert all(r.train.max_epochs == 1 for r in trainer.requests[:4])  # half of TrainConfig(max_epochs=1), at least 1
    assert trainer.requests[4].folder == setup.layout.candidate("g01-c01")
    assert trainer.requests[5].folder == setup.layout.fold_training("g01-c01", 1)
    assert len({r.key for r in trainer.requests}) == len(trainer.requests)  # each training its own cache key


def test_a_failed_fold_fails_the_candidate_with_that_folds_reason(tmp_path) -> None:
    setup = _setup(tmp_path / "run")
    folds = make_folds(_frame(30, 2, 0, "t"), _frame(10, 2, 1, "v"), 3)

    def answer(request: TrainingRequest):
        if request.fold.number == 2:
            return _result(request.program.name, request.folder, status=Status.TIMEOUT)
        return _result(request.program.name, request.folder)

    config = FitnessConfig(folds=3, cascade=CascadeConfig(enabled=False))
    evaluator = FitnessEvaluator(TrainingQueue(setup, FakeTrainer(answer=answer)), folds, config)
    (person,) = evaluator.evaluate([_job("g01-c00")], [])
    assert person.status == Status.TIMEOUT and person.reason == "fold 2: it broke" and not person.trained
    assert person.fold_f1 == [0.5, 0.5] and person.val_macro_f1 is None


def _person(name: str, f1: float, params: int, se: float | None = None, screen: float | None = None) -> Individual:
    return Individual(
        id=name,
        generation=1,
        operator="ast-mutation",
        status=Status.OK,
        params=params,
        val_macro_f1=f1,
        fitness_se=se,
        stage="full",
        screen_f1=screen,
    )


def test_dominance_beyond_the_noise() -> None:
    parent, child = _person("p", 0.45, 1000, se=0.02), _person("c", 0.47, 1000, se=0.02)
    assert dominates(child, parent) and not dominates(child, parent, noise_se=1.0)  # +0.02 < 1 SE (0.028)
    clearly = _person("c2", 0.50, 1000, se=0.02)
    assert dominates(clearly, parent, noise_se=1.0)
    smaller = _person("s", 0.45, 500, se=0.02)
    assert dominates(smaller, parent, noise_se=1.0)  # smaller and no worse
    front = {i.id for i in pareto_front([parent, child], noise_se=1.0)}
    assert front == {"p", "c"} and {i.id for i in pareto_front([parent, child])} == {"c"}
    ranked = rank([parent, child, clearly], SelectionConfig(noise_se=1.0))
    assert ranked[0].id == "c2"
    screened = _person("x", 0.9, 10).model_copy(update={"stage": "screened"})
    assert not screened.trained and pareto_front([screened, parent]) == [parent]


def test_promotion_compares_with_front_members_no_larger_than_the_child() -> None:
    big = _person("big", 0.55, 10_000, screen=0.50)
    small = _person("small", 0.40, 100, screen=0.35)
    cascade = CascadeConfig(margin=0.02, top_fraction=0.0)
    tiny = Individual(id="t", generation=1, operator="x", status=Status.OK, params=50, screen_f1=0.2, stage="screened")
    mid = Individual(id="m", generation=1, operator="x", status=Status.OK, params=500, screen_f1=0.34, stage="screened")
    large = Individual(id="l", generation=1, operator="x", status=Status.OK, params=20_000, screen_f1=0.4)
    # tiny: no front member is that small; mid: only `small` is, and 0.34 is within 0.02 of it;
    # large: `big` is smaller and 0.10 better.
    assert promising([tiny, mid, large], [big, small], cascade) == {"t", "m"}


def test_the_sandbox_trains_on_the_folds_rows_and_sees_only_their_labels(
    small_features, small_splits, tmp_path
) -> None:
    from conftest import candidate_source

    from evoformer.baselines import label_ids

    labels = {name: label_ids(frame["label"]) for name, frame in small_splits.frames.items()}
    fold = make_folds(small_splits["train"], small_splits["val"], 2)[1]
    program = CandidateProgram(name="linear", source=candidate_source("return M(input_dim, num_classes)"))
    folder = tmp_path / "cand"
    result = evaluate_candidate(
        program, small_features.path, labels, folder, TrainConfig(max_epochs=2, time_budget_s=30), fold=fold
    )
    assert result.status == Status.OK, result.reason + result.stderr_tail
    pool = np.concatenate([labels["train"], labels["val"]])
    assert np.array_equal(np.load(folder / TRAIN_LABELS_FILE), pool[fold.train_index])
    with np.load(folder / FOLD_FILE) as saved:
        assert np.array_equal(saved["val_index"], fold.val_index)
    assert result.metrics.val.support == len(fold.val_index)  # scored on the fold's held-out rows
    assert result.metrics.test.support == len(load_split_features(Path(small_features.path), "test"))


def test_folds_are_saved_for_the_orchestrator_and_read_back(tmp_path) -> None:
    from evoformer.data.folds import load_folds, save_folds

    folds = make_folds(_frame(30, 2, 0, "t"), _frame(10, 2, 1, "v"), 3)
    save_folds(tmp_path / "evolution" / "folds.npz", folds)
    again = load_folds(tmp_path / "evolution" / "folds.npz")
    assert [f.digest() for f in again] == [f.digest() for f in folds] and again[2].count == 3
    save_folds(tmp_path / "own.npz", [own_split()])  # the run's own split: nothing to save
    assert load_folds(tmp_path / "own.npz") == []


def test_compression_fine_tunes_on_the_kept_models_fold(small_features, small_splits, tmp_path) -> None:
    """The kept model trained on fold 0's training rows, which include most of val: compression
    must fine-tune and choose on the same fold, whose held-out rows the model never saw."""
    from conftest import candidate_source

    from evoformer.baselines import label_ids
    from evoformer.compression.config import CompressConfig
    from evoformer.compression.evaluate import compress_candidate

    labels = {name: label_ids(frame["label"]) for name, frame in small_splits.frames.items()}
    fold = make_folds(small_splits["train"], small_splits["val"], 2)[0]
    program = CandidateProgram(name="linear", source=candidate_source("return M(input_dim, num_classes)"))
    trained = evaluate_candidate(
        program, small_features.path, labels, tmp_path / "cand", TrainConfig(max_epochs=1, latency_repeats=3), fold=fold
    )
    assert trained.status == Status.OK, trained.reason
    config = CompressConfig(
        sparsities=[0.5],
        structured_ratios=[],
        quantizers=[],
        finetune=TrainConfig(max_epochs=1, patience=1),
        latency_repeats=3,
    )
    report = compress_candidate(tmp_path / "cand", small_features.path, labels, tmp_path / "comp", config, fold=fold)
    assert report.status == "ok", report.reason + report.stderr_tail
    pool = np.concatenate([labels["train"], labels["val"]])
    assert np.array_equal(np.load(tmp_path / "comp" / TRAIN_LABELS_FILE), pool[fold.train_index])
    (reference,) = [v for v in report.variants if v.name == "fp32"]
    assert reference.val is not None and reference.val.support == len(fold.val_index)
    assert reference.val.macro_f1 == pytest.approx(trained.metrics.val.macro_f1)  # the same rows, the same model
