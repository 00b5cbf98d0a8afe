"""LLM generation against the scripted loopback server: JSON mode, prose and fences, malformed JSON,
garbage, HTTP errors, schema and label rejections, few-shot from train only, topics and usage."""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest
from llm_server import Error, Raw, Reply

from evoformer.llm import LLMAuthError, LLMClient, LLMConfig, UsageLedger
from evoformer.synthetic.generator import GenerationConfig, RequestPlan, generate, parse_reply, plan_requests

TRAIN = pd.DataFrame(
    {
        "claim": [f"Train claim number {i} about the warming climate." for i in range(9)],
        "evidence": [f"Train evidence sentence number {i} about measured temperatures." for i in range(9)],
        "label": ["SUPPORTS", "REFUTES", "NOT_ENOUGH_INFO"] * 3,
    }
)


def item(n: int, **extra) -> dict:
    return {
        "claim": f"Generated claim {n} about rising seas.",
        "evidence": f"Generated evidence {n}: tide gauges show a rise of 3 mm per year.",
        **extra,
    }


def client_for(server, **config) -> LLMClient:
    cfg = LLMConfig(base_url=server.base_url, model="gen-model", max_concurrency=1, backoff_initial_s=0.0, **config)
    return LLMClient(cfg, ledger=UsageLedger(cfg), sleep=lambda s: None, rng=random.Random(0))


def test_plan_rotates_topics_and_covers_every_label():
    config = GenerationConfig(per_label=7, examples_per_request=3, topics=["ice", "seas", "heat"])
    plans = plan_requests(config)
    assert [p.count for p in plans if p.label == "SUPPORTS"] == [3, 3, 1]
    assert {p.label for p in plans} == {"SUPPORTS", "REFUTES", "NOT_ENOUGH_INFO"}
    assert len({p.topic for p in plans}) == 3 and [p.index for p in plans] == list(range(len(plans)))


def test_parse_reply_shapes_and_rejections():
    plan = RequestPlan(index=4, label="REFUTES", topic="seas", count=3)
    found, rejected = parse_reply(
        json.dumps({"examples": [item(1), item(2, label="supports"), {"claim": "x"}]}), plan, "m", "h"
    )
    assert (
        [e.claim for e in found] == [item(1)["claim"]] and found[0].label == "REFUTES" and found[0].prompt_hash == "h"
    )
    assert "not the requested REFUTES" in rejected[0].reason and "without evidence" in rejected[1].reason
    assert rejected[0].origin == "request 4 item 1"
    found, _ = parse_reply("Here you go:\n```json\n[" + json.dumps(item(3)) + "]\n```\nEnjoy!", plan, "m", "h")
    assert len(found) == 1
    found, rejected = parse_reply('{"examples": [{"claim": "Generated claim about', plan, "m", "h")
    assert found == [] and "no JSON" in rejected[0].reason
    found, rejected = parse_reply("Okay. " + json.dumps(item(5)) + " and more", plan, "m", "h")
    assert len(found) == 1 and "malformed JSON reply" in rejected[0].reason


def test_generation_survives_garbage_malformed_json_and_http_errors(scripted_llm_server):
    server = scripted_llm_server(
        [
            Reply(json.dumps({"examples": [item(1), item(2)]})),  # request 0: JSON mode reply
            Error(500, "overloaded"),
            Raw("{not json", status=200),  # request 1: 500, malformed body, then
            Reply(
                "Sure! Here are examples:\n```json\n"
                + json.dumps([item(3), {"claim": "too short", "evidence": "no"}])
                + "\n```"
            ),
            Reply("I'm sorry, I can't help with that."),  # request 2: garbage
            Reply('{"examples": [' + json.dumps(item(4)) + ', {"claim": "Generated clai'),  # request 3: truncated JSON
        ]
    )
    client = client_for(server)
    config = GenerationConfig(
        per_label=4, labels=["SUPPORTS", "REFUTES"], examples_per_request=2, few_shot=2, llm=client.config
    )
    result = generate(client, TRAIN, config)
    client.close()

    report = result.report
    assert report.requests == 4 and report.failed_requests == 0
    assert [e.claim for e in result.examples] == [
        item(n)["claim"] for n in (1, 2, 3, 4)
    ]  # item 4: complete, in a truncated reply
    assert report.examples == 4 and report.rejected == 3 and report.items == 7
    reasons = [r.reason for r in report.rejections]
    assert "at least 10 characters" in reasons[0] and "no JSON" in reasons[1] and "malformed JSON reply" in reasons[2]
    assert [r.origin for r in report.rejections] == ["request 1 item 1", "request 2", "request 3"]
    assert report.labels == {"SUPPORTS": 3, "REFUTES": 1}  # requests 0-1 ask for SUPPORTS, 2-3 for REFUTES
    usage = client.ledger.snapshot()
    assert usage.requests == 6 and usage.retries == 2 and usage.tokens > 0
    assert {e.generator for e in result.examples} == {"gen-model"} and all(
        e.source == "llm" and e.prompt_hash for e in result.examples
    )
    assert result.examples[0].prompt_hash != result.examples[2].prompt_hash


def test_prompts_use_train_few_shot_of_the_target_label_and_json_mode(scripted_llm_server):
    server = scripted_llm_server(default=lambda request: {"content": json.dumps({"examples": [item(0)]})})
    client = client_for(server)
    config = GenerationConfig(
        per_label=2, examples_per_request=1, few_shot=2, topics=["ice", "seas", "heat", "storms"], llm=client.config
    )
    generate(client, TRAIN, config)
    client.close()
    assert len(server.requests) == 6
    by_label = dict(zip(TRAIN["claim"], TRAIN["label"], strict=False))
    topics = set()
    for request in server.requests:
        assert request["response_format"] == {"type": "json_object"} and request["seed"] == 0
        text = request["messages"][-1]["content"]
        label = next(name for name in ("SUPPORTS", "REFUTES", "NOT_ENOUGH_INFO") if name in text)
        shots = [json.loads(line)["claim"] for line in text.splitlines() if line.startswith("{")]
        assert len(shots) == 2 and all(by_label[s] == label for s in shots)
        topics.add(next(t for t in ("ice", "seas", "heat", "storms") if f"about {t}" in text))
    assert len(topics) >= 3


def test_a_failed_request_is_counted_and_a_rejected_key_stops(scripted_llm_server):
    server = scripted_llm_server([Error(503)] * 3 + [Reply(json.dumps({"examples": [item(1)]}))])
    client = client_for(server, max_retries=2)
    config = GenerationConfig(per_label=2, labels=["SUPPORTS"], examples_per_request=1, llm=client.config)
    result = generate(client, TRAIN, config)
    assert result.report.failed_requests == 1 and len(result.examples) == 1
    assert "request failed" in result.report.rejections[0].reason
    denied = scripted_llm_server([Error(401, "bad key")])
    with pytest.raises(LLMAuthError):
        generate(client_for(denied), TRAIN, GenerationConfig(per_label=1, labels=["SUPPORTS"]))
