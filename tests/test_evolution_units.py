"""Code extraction, EvoPrompting prompts, selection (Pareto, threshold, retirement) and planning."""

from __future__ import annotations

import json

import pytest
from conftest import candidate_source

from evoformer.evolution.extract import ExtractionError, extract_program
from evoformer.evolution.population import (
    Individual,
    SelectionConfig,
    crowding_distance,
    non_dominated_fronts,
    parent_pool,
    pareto_front,
    rank,
    retire,
)
from evoformer.evolution.prompt import ParentView, Target, build_messages, prompt_hash

PROGRAM = candidate_source("return M(input_dim, num_classes)").strip() + "\n"


# ---- extraction -------------------------------------------------------------------------------


def test_extracts_fenced_program_with_prose_around() -> None:
    reply = f"Sure! Here is a smaller model.\n\n```python\n{PROGRAM}```\n\nIt should reach the target."
    assert extract_program(reply) == PROGRAM


def test_extracts_plain_code_with_prose_before_and_after() -> None:
    reply = f"Here is my program:\n{PROGRAM}\nThis uses fewer parameters."
    assert extract_program(reply).strip() == PROGRAM.strip()


def test_takes_last_block_that_defines_the_entry_point() -> None:
    old = PROGRAM.replace("nn.Linear(d, c)", "nn.Linear(d, c, bias=False)")
    reply = f"First try:\n```python\n{old}```\nBetter:\n```python\n{PROGRAM}```\nUsage:\n```bash\npython train.py\n```"
    assert extract_program(reply) == PROGRAM


def test_joins_blocks_when_the_entry_block_needs_earlier_definitions() -> None:
    model, entry = PROGRAM.split("def build_model")
    reply = f"The module:\n```python\n{model}```\nAnd the factory:\n```python\ndef build_model{entry}```"
    code = extract_program(reply)
    assert "class M" in code and "def build_model" in code


def test_unclosed_fence_is_read_to_the_end() -> None:
    assert extract_program(f"```python\n{PROGRAM}") == PROGRAM


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty reply"),
        ("I cannot help with that.", "no code defining build_model"),
        ("```python\nprint('hello')\n```", "no code block defines build_model"),
        ("```python\ndef build_model(a, b)\n    return 1\n```", "does not parse"),
    ],
)
def test_reply_without_a_program_is_rejected_with_a_reason(reply: str, reason: str) -> None:
    with pytest.raises(ExtractionError, match=reason):
        extract_program(reply)


# ---- prompts ----------------------------------------------------------------------------------


def _parent(pid: str, params: int, f1: float, failures: list[str] | None = None) -> ParentView:
    return ParentView(id=pid, source=PROGRAM, params=params, val_macro_f1=f1, recent_failures=failures or [])


def test_prompt_shows_parents_with_metrics_then_the_target_line() -> None:
    parents = [_parent("a", 10_000, 0.40), _parent("b", 50_000, 0.45, ["timeout: too slow"])]
    messages = build_messages(parents, ["torch", "math"], prelude="PE = 1")
    system, user = messages[0]["content"], messages[1]["content"]
    assert "torch, math" in system and "PE = 1" in system
    assert user.index("params 10,000 | fitness 0.4000") < user.index("params 50,000 | fitness 0.4500")
    assert "Cross over programs 1-2" in user and "timeout: too slow" in user
    target = Target.for_parents(parents)
    assert (target.params, round(target.val_macro_f1, 4)) == (9_000, 0.459)
    assert user.rstrip().endswith("# Metrics: params 9,000 | fitness 0.4590")
    one = build_messages(parents[:1], ["torch"])
    assert "Mutate program 1" in one[1]["content"] and "Program 2" not in one[1]["content"]
    assert prompt_hash(one) != prompt_hash(messages)


# ---- selection --------------------------------------------------------------------------------


def _ind(pid: str, params: int | None, f1: float | None, status: str = "ok", **kw) -> Individual:
    return Individual(
        id=pid,
        generation=kw.pop("generation", 1),
        operator="ast-mutation",
        status=status,
        params=params,
        val_macro_f1=f1,
        test_macro_f1=f1,
        **kw,
    )


POP = [
    _ind("big-good", 100_000, 0.50),
    _ind("mid", 30_000, 0.45),
    _ind("small", 5_000, 0.38),
    _ind("dominated", 120_000, 0.44),  # worse than big-good on both
    _ind("dominated2", 40_000, 0.40),  # worse than mid on both
    _ind("too-bad", 1_000, 0.25),  # val error 0.75 >= threshold 0.70
    _ind("failed", None, None, status="runtime_error"),
]


def test_pareto_fronts_and_crowding() -> None:
    fronts = non_dominated_fronts([i for i in POP if i.trained])
    assert {i.id for i in fronts[0]} == {"big-good", "mid", "small", "too-bad"}
    assert {i.id for i in fronts[1]} == {"dominated", "dominated2"}
    crowd = crowding_distance(fronts[0])
    assert crowd["too-bad"] == crowd["big-good"] == float("inf")
    assert 0 < crowd["mid"] < float("inf") and 0 < crowd["small"] < float("inf")
    assert [i.id for i in pareto_front(POP)] == ["too-bad", "small", "mid", "big-good"]


def test_threshold_keeps_bad_candidates_out_of_the_parent_pool() -> None:
    pareto = rank(POP, SelectionConfig(fitness="pareto"))
    assert "too-bad" not in {i.id for i in pareto} and "failed" not in {i.id for i in pareto}
    assert {i.id for i in pareto[:3]} == {"big-good", "mid", "small"}
    assert [i.id for i in pareto[3:]] in (["dominated", "dominated2"], ["dominated2", "dominated"])
    loose = rank(POP, SelectionConfig(fitness="pareto", error_threshold=0.8))
    assert "too-bad" in {i.id for i in loose}


def test_evoprompting_fitness_orders_by_params_times_error() -> None:
    ranked = rank(POP, SelectionConfig(fitness="evoprompting"))
    # -(params x error): small 5000*.62=3100, mid 16500, dominated2 24000, big-good 50000, dominated 67200
    assert [i.id for i in ranked] == ["small", "mid", "dominated2", "big-good", "dominated"]


def test_parents_are_retired_once_used_and_readmitted_only_when_none_is_left() -> None:
    population = [i.model_copy() for i in POP]
    config = SelectionConfig(top_p=2)
    pool, note = parent_pool(population, config)
    assert len(pool) == 2 and not note
    retire(population, {i.id for i in pool})
    second, note = parent_pool(population, config)
    assert not note and not {i.id for i in second} & {i.id for i in pool}
    retire(population, {i.id for i in population})
    fallback, note = parent_pool(population, config)
    assert "retired" in note and len(fallback) == 2
    weak, note = parent_pool([i for i in POP if i.id in ("too-bad", "failed")], config)
    assert [i.id for i in weak] == ["too-bad"] and "error threshold" in note


def test_plan_children_is_deterministic_and_respects_k() -> None:
    from evoformer.evolution.operators import plan_children

    pool = [i for i in POP if i.trained][:4]
    config = SelectionConfig(parents_k=2, crossover_rate=0.5)
    plans = plan_children(pool, 1, 20, config, seed=7)
    assert plans == plan_children(pool, 1, 20, config, seed=7)
    assert plans != plan_children(pool, 1, 20, config, seed=8)
    kinds = {p.kind for p in plans}
    assert kinds == {"mutation", "crossover"}
    for plan in plans:
        assert len(plan.parents) == (2 if plan.kind == "crossover" else 1)
        assert len(set(plan.parents)) == len(plan.parents)
    only_mutation = plan_children(pool, 1, 5, SelectionConfig(crossover_rate=0.0), seed=7)
    assert {p.kind for p in only_mutation} == {"mutation"}
    with pytest.raises(ValueError, match="no candidate is eligible"):
        plan_children([], 1, 3, config, seed=0)


def test_sibling_mutations_are_asked_for_different_changes() -> None:
    from evoformer.evolution.operators import plan_children
    from evoformer.evolution.prompt import MUTATION_CHANGES

    pool = [i for i in POP if i.trained][:1]  # one parent: every child is a mutation of it
    plans = plan_children(pool, 1, len(MUTATION_CHANGES), SelectionConfig(crossover_rate=0.0), seed=3)
    assert sorted(p.change for p in plans) == sorted(MUTATION_CHANGES)  # each change once, none repeated
    mixed = plan_children([i for i in POP if i.trained][:4], 1, 20, SelectionConfig(crossover_rate=0.5), seed=7)
    assert all((p.change is None) == (p.kind == "crossover") for p in mixed)
    later = plan_children(pool, 2, len(MUTATION_CHANGES), SelectionConfig(crossover_rate=0.0), seed=3)
    assert [p.change for p in later] != [p.change for p in plans]  # the order is shuffled per generation


def test_a_retried_flow_run_gets_the_same_run_folder(prefect_harness) -> None:
    from prefect import flow

    from flows.evolve import EvolveParams, with_stable_run_id

    seen: list[str] = []

    @flow(retries=1, retry_delay_seconds=0)
    def flaky() -> str:
        seen.append(with_stable_run_id(EvolveParams()).data.storage.run_id)
        if len(seen) == 1:
            raise RuntimeError("first attempt fails")
        return seen[-1]

    flaky()
    assert len(seen) == 2 and seen[0] == seen[1] and seen[0]
    explicit = EvolveParams()
    explicit.data.storage.run_id = "mine"
    assert with_stable_run_id(explicit).data.storage.run_id == "mine"


# ---- display: leaderboard rows, the verdict, the CLI summary, the report ----------------------

DISPLAY = [
    Individual(
        id="g01-c00",
        generation=1,
        parents=["seed-a"],
        operator="ast-mutation",
        status="ok",
        stage="full",
        params=3000,
        val_macro_f1=0.512,
        fitness_se=0.011,
        fold_f1=[0.5, 0.533, 0.503],
        test_macro_f1=0.4981,
    ),
    Individual(
        id="seed-a",
        generation=0,
        operator="seed",
        status="ok",
        stage="full",
        params=5000,
        val_macro_f1=0.47,
        fold_f1=[0.47],
        test_macro_f1=0.46,
    ),
    Individual(
        id="g01-c01",
        generation=1,
        parents=["seed-a"],
        operator="ast-mutation",
        status="ok",
        stage="screened",
        params=800,
        screen_f1=0.43,
        test_macro_f1=0.41,
        reason="stopped by the cascade after stage 1",
    ),
    Individual(
        id="g01-c02", generation=1, parents=["seed-a"], operator="ast-mutation", status="duplicate", copy_of="seed-a"
    ),
]


def test_leaderboard_rows_show_fitness_se_folds_stage_and_test() -> None:
    from evoformer.evolution.report import leaderboard_rows

    rows = leaderboard_rows(list(reversed(DISPLAY)), run_id="r1")
    assert [r["id"] for r in rows] == ["g01-c00", "seed-a", "g01-c01", "g01-c02"]  # full, screened, the rest
    assert list(rows[0])[:5] == ["id", "status", "reason", "stage", "fitness"]  # what a user reads first
    assert json.loads(rows[0]["compress_parameters"]) == {"params": {"run_id": "r1", "candidates": ["g01-c00"]}}
    assert rows[3]["compress_parameters"] == ""  # a duplicate has no model to compress
    cv, split, screened, duplicate = rows
    assert cv["fitness"] == "0.512 ± 0.011" and cv["folds"] == "0.500 / 0.533 / 0.503" and cv["stage"] == "full"
    assert cv["test_macro_f1"] == 0.4981 and cv["params"] == 3000 and cv["parents"] == "seed-a"
    assert split["fitness"] == "0.470" and split["folds"] == "0.470"  # one fold: no SE
    assert screened["fitness"] == "stage 1: 0.430" and screened["stage"] == "screened"
    assert screened["folds"] == "" and screened["test_macro_f1"] is None  # no fitness, no test shown
    assert duplicate["fitness"] == "" and duplicate["copy_of"] == "seed-a" and duplicate["status"] == "duplicate"


def _brief(pid: str, mean: float | None, se: float | None, test: float | None, generation: int = 1) -> dict:
    return {
        "id": pid,
        "params": 3000,
        "val_macro_f1": mean,
        "test_macro_f1": test,
        "generation": generation,
        "fitness": {"mean": mean, "se": se, "folds_done": 3, "stage": "full"},
    }


def _evolve_summary(beats: bool, on_test: bool | None, evolved_test: float | None = 0.49) -> dict:
    evolved = _brief("g01-c00", 0.512, 0.011, evolved_test)
    seed = _brief("seed-a", 0.47, 0.02, 0.46, generation=0)
    return {
        "run_id": "r1",
        "run_dir": "/runs/r1",
        "operator": "offline",
        "operator_reason": "offline: no LLM",
        "generations": 1,
        "stopped": "",
        "candidates": {"total": 4, "ok": 3, "rejected": 1, "failed": 0, "by_status": {}},
        "fitness": {
            "kind": "cv",
            "folds": 3,
            "noise_se": 1.0,
            "cascade": True,
            "screened_out": 1,
            "fully_evaluated": 2,
        },
        "best": evolved,
        "best_seed": seed,
        "best_evolved": evolved,
        "front": [evolved],
        "seed_front": [seed],
        "evolved_beats_best_seed": beats,
        "evolved_beats_best_seed_on_test": on_test,
        "llm": {"requests": 0, "retries": 0, "tokens": 0, "cost": 0.0, "cache_hits": 0, "failures": 0},
        "lineage": "/runs/r1/lineage.json",
        "pareto_plot": "/runs/r1/pareto.png",
        "baselines": {"majority": {"val": 0.2613, "test": 0.2609}},
    }


def test_verdict_beat_not_beat_and_no_test() -> None:
    from evoformer.evolution.report import verdict

    assert verdict(_evolve_summary(True, True)) == (
        "The best evolved candidate (g01-c00, fitness 0.512 ± 0.011) beat the best seed (seed-a, fitness "
        "0.470 ± 0.020) on fitness; on test (measured, not used to choose) it beat it, 0.490 vs 0.460."
    )
    lost = verdict(_evolve_summary(False, False, evolved_test=0.45))
    assert "did not beat the best seed (seed-a" in lost and lost.endswith("it did not beat it, 0.450 vs 0.460.")
    no_test = verdict(_evolve_summary(True, None, evolved_test=None))
    assert ") beat the best seed" in no_test and no_test.endswith("there is no score for both.")
    none = verdict(_evolve_summary(True, None) | {"best_evolved": None})
    assert none.startswith("No evolved candidate was fully evaluated")


def test_cli_evolve_summary_shows_fitness_stage_test_cascade_and_ends_with_the_verdict() -> None:
    from flows.cli.summaries import format_evolve_summary

    out = format_evolve_summary(_evolve_summary(True, False, evolved_test=0.44)).splitlines()
    assert "fitness: 3-fold cross-validation over train + val (mean val macro-F1 over the folds ± SE)" in out[4]
    assert any("cascade: 1 child stopped after stage 1 (no fitness), 2 candidates fully evaluated" in x for x in out)
    best = next(line for line in out if line.startswith("best seed"))
    assert "seed-a" in best and "fitness 0.470 ± 0.020 (full, 3 folds), test 0.460" in best
    evolved = next(line for line in out if line.startswith("best evolved"))
    assert "fitness 0.512 ± 0.011 (full, 3 folds), test 0.440" in evolved
    assert any(line.startswith("baseline majority") and "val 0.2613" in line for line in out)  # beside the figures
    assert out[-1].startswith("The best evolved candidate (g01-c00") and "on fitness; on test" in out[-1]
    assert out[-1].endswith("it did not beat it, 0.440 vs 0.460.")


def test_cli_evolve_summary_of_a_single_split() -> None:
    from flows.cli.summaries import format_evolve_summary

    summary = _evolve_summary(False, None, evolved_test=None)
    summary["fitness"] |= {"kind": "split", "folds": 1, "cascade": False, "screened_out": 0}
    summary["best_seed"]["fitness"] |= {"se": None, "folds_done": 1}
    out = format_evolve_summary(summary)
    assert "fitness: single val split" in out and "cascade: off, 2 candidates fully evaluated" in out
    assert "fitness 0.470 (full, 1 fold), test 0.460" in out and "test -" in out
    assert out.splitlines()[-1].endswith("on test (measured, not used to choose) there is no score for both.")


def test_report_headline_leaderboard_and_plot_show_the_cross_validated_fitness(tmp_path) -> None:
    import json

    from evoformer.run_report import render_report

    run = tmp_path / "r1"
    run.mkdir()
    (run / "lineage.json").write_text(json.dumps([p.model_dump(mode="json") for p in DISPLAY]))
    majority = {"macro_f1": 0.2613, "weighted_f1": 0.5, "accuracy": 0.64, "per_class_f1": {}}
    baselines = {"majority": {"val": majority, "test": majority | {"macro_f1": 0.2609}}}
    evolve = _evolve_summary(True, True)
    (run / "summary.json").write_text(json.dumps({"run_id": "r1", "baselines": baselines, "evolve": evolve}))
    html = render_report(run)
    headline = html[html.index("<p class='headline'>") :].split("</p>")[0]
    assert "Fitness: 3-fold cross-validation over train + val" in headline
    assert "beat the best seed (seed-a, fitness 0.470 ± 0.020) on fitness" in headline
    assert "Majority class: val 0.261, test 0.261" in headline
    board = html[html.index("<h2>Leaderboard</h2>") : html.index("<h2>Pareto plot</h2>")]
    assert '<th class="l">fitness</th><th class="l">folds</th>' in board and '<th class="l">stage</th>' in board
    assert "0.512 ± 0.011" in board and "0.500 / 0.533 / 0.503" in board and "stage 1: 0.430" in board
    assert "0.261 (val split)" in board  # the majority class stays beside the scores
    assert "Fitness (mean val macro-F1 over folds) against parameters" in html
    assert "<h3>g01-c00 — fitness 0.512 ± 0.011 (folds 0.500 / 0.533 / 0.503), test 0.4981" in html


def test_pareto_plot_draws_fully_evaluated_candidates_with_se_bars(tmp_path, monkeypatch) -> None:
    import matplotlib.axes

    from evoformer.evolution.report import FITNESS_AXIS, plot_pareto

    seen: dict[str, list] = {"errorbar": [], "scatter": [], "set_ylabel": []}
    for name in seen:
        original = getattr(matplotlib.axes.Axes, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            seen[_name].append((args, kwargs))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(matplotlib.axes.Axes, name, spy)
    path = plot_pareto(DISPLAY, tmp_path / "pareto.png", 0.26)
    assert path.is_file() and FITNESS_AXIS in [args[0] for args, _ in seen["set_ylabel"]]
    ((args, kwargs),) = seen["errorbar"]  # only the child with an SE; the one-fold seed has none
    assert list(args[0]) == [3000] and kwargs["yerr"] == [0.011]
    plotted = [x for args, _ in seen["scatter"] for x in args[0]]
    assert sorted(plotted) == [3000, 5000]  # the screened child (800 params) is not plotted


def test_cli_pipeline_summary_ends_with_the_verdict() -> None:
    from flows.cli.summaries import format_pipeline_summary

    m = {"macro_f1": 0.26, "weighted_f1": 0.5, "accuracy": 0.64}
    labels = {"SUPPORTS": 5, "REFUTES": 3, "NOT_ENOUGH_INFO": 2}
    data = {
        "run_id": "r1",
        "run_dir": "/runs/r1",
        "splits": {"train": {"pairs": 10, "claims": 4, "labels": labels}},
        "claim_overlap": 0,
        "baselines": {"majority": {"val": m, "test": m}},
        "features_path": "/f",
        "features_cached": True,
    }
    out = format_pipeline_summary(
        {"data": data, "evolve": _evolve_summary(False, True), "compress": None, "report": "/runs/r1/report.html"}
    )
    lines = out.splitlines()
    assert sum(line.startswith("The best evolved candidate") for line in lines) == 1  # once, at the end
    assert lines[-1].startswith("The best evolved candidate (g01-c00, fitness 0.512 ± 0.011) did not beat")
    assert lines[-1].endswith("it beat it, 0.490 vs 0.460.") and "report: /runs/r1/report.html" in out
    assert "fitness: 3-fold cross-validation over train + val" in out and "baseline majority" in out


def test_llm_quality_sentence() -> None:
    from evoformer.evolution.report import llm_quality_text

    assert llm_quality_text({}) == "" and llm_quality_text({"children": 0}) == ""
    text = llm_quality_text(
        {"children": 6, "valid_children": 3, "repairs": 0.667, "tokens_per_valid_child": 1234.4,
         "seconds_per_valid_child": 161.0}
    )  # fmt: skip
    assert text == (
        "LLM children: 3 of 6 valid (trained ok, no copy; 50%), 0.67 repair rounds, "
        "1,234 tokens and 161 s per valid child."
    )
    assert (
        llm_quality_text({"children": 4, "valid_children": 0})
        == "LLM children: 0 of 4 valid (trained ok, no copy; 0%)."
    )
