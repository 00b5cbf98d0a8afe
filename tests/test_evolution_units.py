"""Code extraction, EvoPrompting prompts, selection (Pareto, threshold, retirement) and planning."""

from __future__ import annotations

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
    assert user.index("params 10,000 | val macro-F1 0.4000") < user.index("params 50,000 | val macro-F1 0.4500")
    assert "Cross over programs 1-2" in user and "timeout: too slow" in user
    target = Target.for_parents(parents)
    assert (target.params, round(target.val_macro_f1, 4)) == (9_000, 0.459)
    assert user.rstrip().endswith("# Metrics: params 9,000 | val macro-F1 0.4590")
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
