"""Every quality gate on crafted cases: duplicates, copies of val/test examples, wrong labels, balance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evoformer.features.sentences import embed_texts
from evoformer.labels import LABELS
from evoformer.llm import LLMClient, LLMConfig
from evoformer.synthetic.balance import BalanceConfig, balance_targets, choose_rows
from evoformer.synthetic.gates import GateConfig, run_gates, schema_report
from evoformer.synthetic.records import SyntheticExample
from evoformer.synthetic.verify import agreement, judge_label


def frame(rows: list[tuple[str, str, str]], start: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"pair_id": start + i, "claim_id": f"c{start + i}", "claim": c, "evidence": e, "label": label}
            for i, (c, e, label) in enumerate(rows)
        ]
    )


TRAIN = frame(
    [
        (
            "Global temperatures have risen since 1880.",
            "The global average surface temperature rose about 1.1 degrees Celsius since the late 19th century.",
            "SUPPORTS",
        ),
        (
            "Greenland is losing ice.",
            "The Greenland ice sheet lost several hundred gigatonnes of ice per year over the last decades.",
            "SUPPORTS",
        ),
        (
            "Polar bear numbers are booming.",
            "Polar bear subpopulations in the Southern Beaufort Sea declined by about 40 percent.",
            "REFUTES",
        ),
        (
            "Wind farms kill all birds nearby.",
            "Wind turbines were an early topic of the offshore energy industry in Denmark.",
            "NOT_ENOUGH_INFO",
        ),
    ]
)
VAL = frame(
    [
        (
            "Coral reefs are bleaching more often.",
            "Mass coral bleaching events have become five times more frequent since the 1980s.",
            "SUPPORTS",
        )
    ],
    100,
)
TEST = frame(
    [
        (
            "Ocean acidity has increased since the industrial revolution.",
            "Ocean surface pH has fallen by about 0.1 units since pre-industrial times.",
            "SUPPORTS",
        )
    ],
    200,
)
SPLITS = {"train": TRAIN, "val": VAL, "test": TEST}


def example(claim: str, evidence: str, label: str = "SUPPORTS", n: int = 0) -> SyntheticExample:
    return SyntheticExample(
        claim=claim, evidence=evidence, label=label, source="import:test/x.json", generator="test", origin=f"x.json:{n}"
    )


@pytest.fixture(scope="module")
def embed(feature_cache_dir):
    return lambda texts: embed_texts(texts, cache_dir=feature_cache_dir)


CRAFTED = [
    (
        "Glaciers in the Alps are shrinking quickly.",
        "Alpine glaciers have lost about half of their volume since 1900.",
        "kept",
    ),
    (
        "glaciers in the alps are shrinking quickly",
        "Alpine glaciers have lost about half of their volume since 1900!",
        "exact_duplicates",
    ),
    (TRAIN.claim[0], TRAIN.evidence[0], "exact_duplicates"),
    (TEST.claim[0], "Acid rain was a major environmental issue in Europe during the 1980s.", "decontamination"),
    (
        "Bleaching of reefs is increasing.",
        "Mass coral bleaching events have become five times as frequent since the 1980s.",
        "decontamination",
    ),
    (
        "Glaciers in the Alps are shrinking fast.",
        "Alpine glaciers have lost about half their volume since 1900.",
        "near_duplicates",
    ),
    (
        "Greenland is losing ice fast.",
        "The Greenland ice sheet lost several hundred gigatonnes of ice each year over the last decades.",
        "near_duplicates",
    ),
    (
        "Heatwaves in Europe are getting longer.",
        "Summer heatwaves in Europe have become longer and more intense since 1950.",
        "kept",
    ),
]


def test_each_gate_drops_its_crafted_case_and_nothing_else(embed):
    examples = [example(c, e, n=i) for i, (c, e, _) in enumerate(CRAFTED)]
    schema = schema_report(len(examples) + 1, len(examples), [], 1)
    outcome = run_gates(examples, schema, SPLITS, GateConfig(verify="none", balance=BalanceConfig(mode="none")), embed)

    assert list(outcome.kept["claim"]) == [c for c, _, gate in CRAFTED if gate == "kept"]
    gate_of = dict(zip(outcome.rejected["claim"], outcome.rejected["gate"], strict=False))
    for claim, _, gate in CRAFTED:
        if gate != "kept":
            assert gate_of[claim] == gate, (claim, outcome.rejected[["claim", "gate", "reason"]].to_string())
    reports = {r.gate: r for r in outcome.reports}
    assert list(reports) == ["schema", "exact_duplicates", "decontamination", "near_duplicates", "class_balance"]
    assert (reports["schema"].input, reports["schema"].dropped) == (9, 1)
    assert reports["exact_duplicates"].reasons == {
        "exact copy of a train pair": 1,
        "exact duplicate within the synthetic set": 1,
    }
    assert reports["decontamination"].detail["by_split"] == {"test": 1, "val": 1}
    assert reports["near_duplicates"].reasons == {
        "near duplicate of a train pair": 1,
        "near duplicate within the synthetic set": 1,
    }
    for r in outcome.reports[1:]:
        assert r.input - r.dropped == r.kept
    assert len(outcome.rejected) == sum(r.dropped for r in outcome.reports[1:])


def test_no_kept_example_is_within_the_decontamination_threshold(embed):
    examples = [example(c, e, n=i) for i, (c, e, _) in enumerate(CRAFTED)]
    config = GateConfig(verify="none", decontamination_threshold=0.6, balance=BalanceConfig(mode="none"))
    outcome = run_gates(examples, schema_report(8, 8, [], 0), SPLITS, config, embed)
    held = embed(sorted(set(VAL.claim) | set(VAL.evidence) | set(TEST.claim) | set(TEST.evidence)))
    kept = np.vstack([embed(list(outcome.kept["claim"])), embed(list(outcome.kept["evidence"]))])
    assert len(outcome.kept) >= 1 and float((kept @ held.T).max()) < 0.6
    dropped = outcome.rejected[outcome.rejected["gate"] == "decontamination"]
    assert (dropped["similarity"].astype(float) >= 0.6).all() and len(dropped) >= 2


RELATED = [
    ("Sea levels are rising.", "Global mean sea level rose about 20 centimetres since 1900."),
    ("Arctic sea ice is shrinking.", "Arctic sea ice extent in September has declined by 13 percent per decade."),
    ("Glaciers are melting worldwide.", "Most mountain glaciers around the world are retreating."),
    ("CO2 levels are at a record high.", "Atmospheric carbon dioxide passed 420 parts per million in 2023."),
    ("Heat records are broken more often.", "Record hot days now outnumber record cold days by two to one."),
    ("Oceans are warming.", "The upper 2000 metres of the ocean have absorbed most of the extra heat."),
    (
        "Droughts are getting worse in the Mediterranean.",
        "Rainfall in the Mediterranean basin has declined and droughts have intensified.",
    ),
    ("Permafrost is thawing.", "Permafrost temperatures have risen by about 0.3 degrees per decade in the Arctic."),
]
UNRELATED = [
    "The football club won the national cup in a penalty shoot-out.",
    "The recipe calls for two eggs, flour and a pinch of salt.",
    "The novel was translated into thirty languages.",
    "The band released its third album after a long tour.",
    "The museum is open every day except Mondays.",
    "The marathon route passes the old town hall.",
    "The smartphone has a larger screen than its predecessor.",
    "The chess champion defended her title in the final round.",
]


def test_classifier_verification_flags_wrong_labels(embed):
    rows = [(c, e, "SUPPORTS") for c, e in RELATED[:6]] + [
        (c, u, "NOT_ENOUGH_INFO") for (c, _), u in zip(RELATED[:6], UNRELATED[:6], strict=False)
    ]
    splits = {
        "train": frame(rows),
        "val": frame(
            [(RELATED[6][0], RELATED[6][1], "SUPPORTS"), (RELATED[6][0], UNRELATED[6], "NOT_ENOUGH_INFO")], 50
        ),
        "test": frame([(RELATED[7][0], RELATED[7][1], "SUPPORTS")], 60),
    }
    candidates = [
        example(
            "Antarctic ice shelves are collapsing.",
            "Several Antarctic ice shelves have disintegrated since 1995.",
            "SUPPORTS",
            0,
        ),
        example(
            "Spring arrives earlier than it used to.",
            "Plants now flower about a week earlier than in the 1970s.",
            "SUPPORTS",
            1,
        ),
        example(
            "Antarctic ice shelves are collapsing.", "The tennis final was postponed because of rain.", "SUPPORTS", 2
        ),  # wrong label
        example(
            "Spring arrives earlier than it used to.", "The bakery sells fresh bread every morning.", "SUPPORTS", 3
        ),  # wrong label
    ]
    config = GateConfig(
        verify="classifier", verify_action="filter", decontamination_threshold=0.99, balance=BalanceConfig(mode="none")
    )
    outcome = run_gates(candidates, schema_report(4, 4, [], 0), splits, config, embed)
    flagged = outcome.rejected[outcome.rejected["gate"] == "label_verification"]
    assert sorted(flagged["origin"]) == ["x.json:2", "x.json:3"]
    assert set(flagged["match"]) == {"NOT_ENOUGH_INFO"}
    verdict = outcome.agreement
    assert verdict.checked == 4 and verdict.agreement == 0.5
    assert verdict.confusion["SUPPORTS"] == {"SUPPORTS": 2, "REFUTES": 0, "NOT_ENOUGH_INFO": 2}
    assert verdict.reference["val_accuracy"] == 1.0


def test_llm_judge_verification_with_garbage_replies(scripted_llm_server, embed, tmp_path):
    def answer(request):
        text = request["messages"][-1]["content"]
        if "bakery" in text:
            return {"content": '{"label": "NOT_ENOUGH_INFO"}'}
        if "Spring" in text:
            return {"content": "I am not sure, sorry."}
        return {"content": 'Verdict: ```json\n{"label": "supports"}\n```'}

    server = scripted_llm_server(default=answer)
    client = LLMClient(LLMConfig(base_url=server.base_url, model="judge", max_concurrency=1))
    candidates = [
        example(
            "Antarctic ice shelves are collapsing.",
            "Several Antarctic ice shelves have disintegrated since 1995.",
            "SUPPORTS",
            0,
        ),
        example(
            "Spring arrives earlier than it used to.",
            "Plants now flower about a week earlier than in the 1970s.",
            "SUPPORTS",
            1,
        ),
        example("Antarctic ice shelves are melting.", "The bakery sells fresh bread every morning.", "SUPPORTS", 2),
    ]
    config = GateConfig(
        verify="llm", verify_action="filter", decontamination_threshold=0.99, balance=BalanceConfig(mode="none")
    )
    outcome = run_gates(
        candidates, schema_report(3, 3, [], 0), SPLITS, config, embed, lambda c, e: judge_label(client, c, e)
    )
    client.close()
    assert list(outcome.kept["origin"]) == ["x.json:0", "x.json:1"]  # no verdict: kept, and counted
    assert outcome.agreement.no_verdict == 1 and outcome.agreement.checked == 2 and outcome.agreement.agreement == 0.5
    assert all(r["response_format"] == {"type": "json_object"} for r in server.requests)


def test_agreement_statistics():
    given = ["SUPPORTS", "SUPPORTS", "REFUTES", "REFUTES"]
    perfect = agreement("x", given, given)
    assert perfect.agreement == 1.0 and perfect.cohen_kappa == 1.0
    half = agreement("x", given, ["SUPPORTS", "REFUTES", "SUPPORTS", "REFUTES"])
    assert half.agreement == 0.5 and half.cohen_kappa == 0.0
    assert half.per_label["SUPPORTS"] == {"given": 2, "agreed": 1, "agreement": 0.5}


def test_balance_targets_and_row_choice():
    train = {"SUPPORTS": 300, "REFUTES": 100, "NOT_ENOUGH_INFO": 600}
    have = {"SUPPORTS": 500, "REFUTES": 50, "NOT_ENOUGH_INFO": 10}
    assert balance_targets(have, train, BalanceConfig(mode="none")) == {
        "SUPPORTS": 500,
        "REFUTES": 50,
        "NOT_ENOUGH_INFO": 10,
    }
    assert balance_targets(have, train, BalanceConfig(mode="fill_minority")) == {
        "SUPPORTS": 300,
        "REFUTES": 50,
        "NOT_ENOUGH_INFO": 0,
    }
    assert balance_targets(have, train, BalanceConfig(mode="equal")) == {
        "SUPPORTS": 10,
        "REFUTES": 10,
        "NOT_ENOUGH_INFO": 10,
    }
    assert balance_targets(have, train, BalanceConfig(mode="match_train")) == {
        "SUPPORTS": 5,
        "REFUTES": 1,
        "NOT_ENOUGH_INFO": 10,
    }
    capped = balance_targets(have, train, BalanceConfig(mode="none", max_fraction_of_train=0.1))
    assert sum(capped.values()) <= 100 and capped["SUPPORTS"] > capped["REFUTES"] > capped["NOT_ENOUGH_INFO"]
    labels = ["SUPPORTS"] * 6 + ["REFUTES"] * 2
    keep = choose_rows(labels, {"SUPPORTS": 3, "REFUTES": 2, "NOT_ENOUGH_INFO": 0}, seed=1)
    assert keep.sum() == 5 and keep[6:].all()
    assert (keep == choose_rows(labels, {"SUPPORTS": 3, "REFUTES": 2}, seed=1)).all()


def test_balance_gate_reports_label_counts(embed):
    examples = [
        example(
            f"Claim number {i} about rising seas.", f"Evidence sentence {i} about tide gauges and satellites.", label, i
        )
        for i, label in enumerate(["SUPPORTS", "SUPPORTS", "SUPPORTS", "REFUTES"])
    ]
    config = GateConfig(
        verify="none", near_duplicate_threshold=1.0, decontamination_threshold=0.99, balance=BalanceConfig(mode="equal")
    )
    outcome = run_gates(examples, schema_report(4, 4, [], 0), SPLITS, config, embed)
    report = outcome.reports[-1]
    assert report.gate == "class_balance" and report.dropped == 2
    assert report.detail["before"] == {"SUPPORTS": 3, "REFUTES": 1, "NOT_ENOUGH_INFO": 0}
    assert sorted(outcome.kept["label"]) == ["REFUTES", "SUPPORTS"] and set(LABELS) >= set(outcome.rejected["label"])
