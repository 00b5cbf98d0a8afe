"""The LLM client against a scripted loopback OpenAI-compatible server: retries, cache, budget."""

from __future__ import annotations

import json
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from llm_clients import MESSAGES, Waits, clean_env, make_client
from llm_server import Error, Raw, Reply

from evoformer.llm import (
    BudgetExhausted,
    CachedReply,
    LLMAuthError,
    LLMClient,
    LLMConfig,
    LLMRequestError,
    LLMUnavailableError,
    ReplyCache,
    UsageLedger,
    reply_key,
    retry_after_seconds,
)

__all__ = ["clean_env"]  # the autouse fixture: no ambient OpenAI settings, clients closed


def test_valid_reply_counts_tokens_and_cost(scripted_llm_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123")
    server = scripted_llm_server([Reply("def build_model(): ...", prompt_tokens=1000, completion_tokens=500)])
    client, waits = make_client(server, price_prompt_per_1k=0.5, price_completion_per_1k=1.5, max_tokens=321)

    reply = client.complete(MESSAGES, temperature=0.7)

    assert reply.text == "def build_model(): ..."
    assert (reply.prompt_tokens, reply.completion_tokens, reply.attempts, reply.cached) == (1000, 500, 1, False)
    assert reply.model == "test-model" and reply.finish_reason == "stop"
    usage = client.ledger.snapshot()
    assert (usage.requests, usage.retries, usage.failures, usage.cache_hits) == (1, 0, 0, 0)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.tokens) == (1000, 500, 1500)
    assert usage.cost_usd == pytest.approx(0.5 + 0.75)
    assert waits == []
    [body] = server.requests
    assert body["model"] == "test-model" and body["messages"] == MESSAGES
    assert body["temperature"] == 0.7 and body["max_tokens"] == 321
    assert "seed" not in body and "response_format" not in body
    assert server.request_headers[0]["authorization"] == "Bearer sk-test-123"


def test_default_token_counts_and_placeholder_key(scripted_llm_server):
    server = scripted_llm_server([Reply("x" * 40)])
    client, _ = make_client(server)
    reply = client.complete(MESSAGES, temperature=0.0)
    assert reply.completion_tokens == 10 and reply.prompt_tokens > 0
    assert server.request_headers[0]["authorization"] == "Bearer not-needed"


@pytest.mark.parametrize(
    ("headers", "least"),
    [({"Retry-After": "7"}, 7.0), ({"retry-after-ms": "2500"}, 2.5), ({"Retry-After": "1000"}, 120.0)],
)
def test_429_waits_at_least_retry_after(scripted_llm_server, headers, least):
    server = scripted_llm_server([Error(429, "slow down", headers=headers), Reply("done")])
    client, waits = make_client(server, retry_after_max_s=120.0)

    reply = client.complete(MESSAGES, temperature=0.2)

    assert reply.text == "done" and reply.attempts == 2
    assert len(waits) == 1 and least <= waits[0] <= least + 0.01  # backoff itself is ~0.01 s here
    usage = client.ledger.snapshot()
    assert (usage.requests, usage.retries, usage.failures) == (2, 1, 0)
    assert len(server.requests) == 2


def test_retry_after_parsing():
    now = 1_700_000_000.0
    date = format_datetime(datetime.fromtimestamp(now, UTC) + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds({"Retry-After": date}, now=now) == pytest.approx(30.0)
    assert retry_after_seconds({"retry-after": "1.5"}) == 1.5
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None
    past = format_datetime(datetime.fromtimestamp(now - 60, UTC), usegmt=True)
    assert retry_after_seconds({"Retry-After": past}, now=now) == 0.0


def test_server_errors_then_success_back_off_exponentially(scripted_llm_server):
    server = scripted_llm_server([Error(500), Error(503), Error(502), Reply("finally")])
    client, waits = make_client(server, backoff_initial_s=1.0, backoff_max_s=3.0)

    reply = client.complete(MESSAGES, temperature=0.5)

    assert reply.text == "finally" and reply.attempts == 4
    assert len(waits) == 3
    nominal = [1.0, 2.0, 3.0]  # doubling, capped at backoff_max_s; jitter then scales by [0.5, 1)
    assert all(0.5 * n <= w < n for w, n in zip(waits, nominal, strict=True)), waits
    assert client.ledger.snapshot().retries == 3


def test_server_errors_forever_give_up_with_attempt_count(scripted_llm_server):
    server = scripted_llm_server(default=lambda request: Error(502, "bad gateway"))
    client, waits = make_client(server, max_retries=3)

    with pytest.raises(LLMUnavailableError) as info:
        client.complete(MESSAGES, temperature=0.5)

    assert info.value.attempts == 4 and len(server.requests) == 4 and len(waits) == 3
    assert "4 attempt" in str(info.value) and "HTTP 502: bad gateway" in str(info.value)
    usage = client.ledger.snapshot()
    assert (usage.requests, usage.retries, usage.failures, usage.tokens) == (4, 3, 1, 0)


def test_exhausted_script_answers_500_with_a_clear_message(scripted_llm_server):
    server = scripted_llm_server([])
    client, _ = make_client(server, max_retries=0)
    with pytest.raises(LLMUnavailableError, match="script exhausted"):
        client.complete(MESSAGES, temperature=0.5)


def test_slow_reply_times_out_then_succeeds(scripted_llm_server):
    server = scripted_llm_server([Reply("too late", delay_s=2.0), Reply("in time")])
    client, waits = make_client(server, timeout_s=0.5)

    started = time.monotonic()
    reply = client.complete(MESSAGES, temperature=0.5)

    assert time.monotonic() - started < 1.8
    assert reply.text == "in time" and reply.attempts == 2 and len(waits) == 1
    assert client.ledger.snapshot().retries == 1


def test_connection_refused_is_retried_then_unavailable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    client, waits = make_client(f"http://127.0.0.1:{port}/v1", max_retries=2)

    with pytest.raises(LLMUnavailableError) as info:
        client.complete(MESSAGES, temperature=0.5)

    assert info.value.attempts == 3 and len(waits) == 2
    assert "APIConnectionError" in info.value.last_error
    assert client.ledger.snapshot().requests == 3


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_are_not_retried(scripted_llm_server, status):
    server = scripted_llm_server([Error(status, "invalid api key"), Reply("never")])
    client, waits = make_client(server)

    with pytest.raises(LLMAuthError) as info:
        client.complete(MESSAGES, temperature=0.5)

    assert len(server.requests) == 1 and waits == [] and server.remaining == 1
    message = str(info.value)
    assert server.base_url in message and "$OPENAI_API_KEY" in message and "invalid api key" in message
    assert client.ledger.snapshot().failures == 1


def test_other_4xx_is_a_request_error(scripted_llm_server):
    server = scripted_llm_server([Error(404, "model 'test-model' not found"), Reply("never")])
    client, waits = make_client(server)
    with pytest.raises(LLMRequestError) as info:
        client.complete(MESSAGES, temperature=0.5)
    assert info.value.status == 404 and "not found" in str(info.value)
    assert len(server.requests) == 1 and waits == []


def test_cache_hit_makes_no_request_and_keys_differ(scripted_llm_server, tmp_path):
    server = scripted_llm_server(default=lambda request: Reply(f"reply {len(server.requests)}"))
    client, _ = make_client(server, tmp_path / "cache")

    first = client.complete(MESSAGES, temperature=0.7, seed=1)
    again = client.complete(MESSAGES, temperature=0.7, seed=1)

    assert (first.text, first.cached) == ("reply 1", False)
    assert (again.text, again.cached, again.attempts) == ("reply 1", True, 0)
    assert again.prompt_tokens == first.prompt_tokens and len(server.requests) == 1
    assert server.requests[0]["seed"] == 1

    client.complete(MESSAGES, temperature=0.7, seed=1, sample_index=1)
    client.complete(MESSAGES, temperature=0.8, seed=1)
    client.complete(MESSAGES, temperature=0.7, seed=2)
    client.complete(MESSAGES, temperature=0.7, seed=1, json_mode=True)
    assert len(server.requests) == 5

    resumed, _ = make_client(server, tmp_path / "cache")  # a new client on the same folder (a resumed run)
    assert resumed.complete(MESSAGES, temperature=0.7, seed=1).text == "reply 1"
    assert len(server.requests) == 5
    assert resumed.ledger.snapshot().cache_hits == 1 and resumed.ledger.snapshot().requests == 0
    usage = client.ledger.snapshot()
    assert (usage.cache_hits, usage.requests) == (1, 5)


def test_concurrent_calls_are_all_counted(scripted_llm_server, tmp_path):
    server = scripted_llm_server(default=lambda request: Reply("t=" + str(request["temperature"]), prompt_tokens=3))
    client, _ = make_client(server, tmp_path / "cache")
    temperatures = [round(0.1 * i, 1) for i in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda t: client.complete(MESSAGES, temperature=t), temperatures))
    assert [r.text for r in replies] == [f"t={t}" for t in temperatures]
    usage = client.ledger.snapshot()
    assert (usage.requests, usage.prompt_tokens, len(server.requests)) == (16, 48, 16)
    assert len(list((tmp_path / "cache").glob("*.json"))) == 16 and not list((tmp_path / "cache").glob("*.tmp"))


def test_reply_key_is_canonical():
    base = reply_key("m", MESSAGES, 1, 0, None)
    assert base == reply_key("m", [dict(reversed(list(m.items()))) for m in MESSAGES], 1.0, 0, None)
    others = {
        reply_key("m2", MESSAGES, 1, 0, None),
        reply_key("m", MESSAGES[1:], 1, 0, None),
        reply_key("m", MESSAGES, 1, 1, None),
        reply_key("m", MESSAGES, 1, 0, 0),
        reply_key("m", MESSAGES, 1, 0, None, {"json_mode": True}),
    }
    assert base not in others and len(others) == 5


def test_budget_stops_requests_but_cached_replies_still_work(scripted_llm_server, tmp_path):
    server = scripted_llm_server(default=lambda request: Reply("ok", prompt_tokens=80, completion_tokens=40))
    client, _ = make_client(server, tmp_path / "cache", budget_tokens=100)

    assert client.complete(MESSAGES, temperature=0.5).text == "ok"
    assert client.ledger.budget_reached()
    with pytest.raises(BudgetExhausted, match="120 tokens used of 100"):
        client.complete(MESSAGES, temperature=0.9)
    assert len(server.requests) == 1
    cached = client.complete(MESSAGES, temperature=0.5)
    assert cached.cached and cached.text == "ok" and len(server.requests) == 1


def test_usd_budget(scripted_llm_server):
    server = scripted_llm_server(default=lambda request: Reply("ok", prompt_tokens=1000, completion_tokens=1000))
    client, _ = make_client(server, price_prompt_per_1k=0.01, price_completion_per_1k=0.03, budget_usd=0.05)
    client.complete(MESSAGES, temperature=0.1)  # $0.04
    assert not client.ledger.budget_reached()
    client.complete(MESSAGES, temperature=0.2)  # $0.08
    with pytest.raises(BudgetExhausted, match=r"\$0\.0800 spent of \$0\.0500"):
        client.complete(MESSAGES, temperature=0.3)
    assert len(server.requests) == 2


def test_ledger_save_load_round_trip(tmp_path):
    config = LLMConfig(price_prompt_per_1k=1.0, price_completion_per_1k=2.0, budget_usd=1.0)
    ledger = UsageLedger(config)
    for record in (ledger.record_attempt, ledger.record_attempt, ledger.record_retry, ledger.record_cache_hit):
        record()
    ledger.record_failure()
    ledger.record_success(300, 100)
    path = tmp_path / "run" / "llm_usage.json"
    ledger.save(path)

    loaded = UsageLedger.load(path, config)
    assert loaded.snapshot() == ledger.snapshot()
    loaded.record_success(200, 100)
    snap = loaded.snapshot()
    assert (snap.requests, snap.retries, snap.cache_hits, snap.failures) == (2, 1, 1, 1)
    assert (snap.prompt_tokens, snap.completion_tokens, snap.tokens) == (500, 200, 700)
    assert snap.cost_usd == pytest.approx(0.5 + 0.4)
    loaded.record_success(100, 0)
    with pytest.raises(BudgetExhausted):
        loaded.check_budget()
    assert json.loads(path.read_text())["tokens"] == 400
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind

    assert UsageLedger.load(tmp_path / "absent.json", config).snapshot().requests == 0
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        UsageLedger.load(tmp_path / "bad.json", config)


@pytest.mark.parametrize("garbage", ["{truncated", '{"text": 3}', "", "[]"])
def test_corrupt_cache_file_is_a_miss(scripted_llm_server, tmp_path, caplog, garbage):
    cache = ReplyCache(tmp_path / "cache")
    key = reply_key("test-model", MESSAGES, 0.5, 0, None)
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_text(garbage)

    with caplog.at_level(logging.WARNING, logger="evoformer.llm.cache"):
        assert cache.get(key) is None
    assert "corrupt entry" in caplog.text

    server = scripted_llm_server([Reply("fresh")])
    client, _ = make_client(server, tmp_path / "cache")
    reply = client.complete(MESSAGES, temperature=0.5)
    assert reply.text == "fresh" and not reply.cached and len(server.requests) == 1
    assert cache.get(key) == CachedReply.model_validate_json(cache.path(key).read_text())
    assert cache.get(key).text == "fresh"


def test_json_mode_falls_back_without_response_format_on_400(scripted_llm_server):
    server = scripted_llm_server([Error(400, "response_format is not supported"), Reply('{"op": "widen"}')])
    client, waits = make_client(server)

    reply = client.complete(MESSAGES, temperature=0.5, json_mode=True)

    assert json.loads(reply.text) == {"op": "widen"} and reply.attempts == 2 and waits == []
    assert server.requests[0]["response_format"] == {"type": "json_object"}
    assert "response_format" not in server.requests[1]
    assert client.ledger.snapshot().retries == 0 and client.ledger.snapshot().requests == 2


def test_json_mode_sent_when_supported_and_400_without_it_is_final(scripted_llm_server):
    server = scripted_llm_server([Reply("{}"), Error(400, "context too long"), Reply("never")])
    client, _ = make_client(server)
    assert client.complete(MESSAGES, temperature=0.5, json_mode=True).text == "{}"
    assert server.requests[0]["response_format"] == {"type": "json_object"}
    with pytest.raises(LLMRequestError, match="context too long"):
        client.complete(MESSAGES, temperature=0.6)
    assert len(server.requests) == 2


def test_max_completion_tokens_fallback(scripted_llm_server):
    refusal = (
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
    )
    server = scripted_llm_server([Error(400, refusal), Reply("ok")])
    client, _ = make_client(server, max_tokens=99)
    assert client.complete(MESSAGES, temperature=1.0).text == "ok"
    assert server.requests[1]["max_completion_tokens"] == 99 and "max_tokens" not in server.requests[1]


def test_malformed_bodies_are_retried(scripted_llm_server):
    html = Raw("<html>bad gateway</html>", content_type="text/html")
    server = scripted_llm_server([Raw("not json"), html, Reply("ok")])
    client, waits = make_client(server)
    reply = client.complete(MESSAGES, temperature=0.5)
    assert reply.text == "ok" and reply.attempts == 3 and len(waits) == 2


def test_empty_reply_and_missing_usage(scripted_llm_server, tmp_path, caplog):
    server = scripted_llm_server([Reply(choices=False, usage=False), Reply(None, usage=False), Reply("x", usage=False)])
    client, _ = make_client(server, tmp_path / "cache")

    with caplog.at_level(logging.WARNING, logger="evoformer.llm.client"):
        empty = client.complete(MESSAGES, temperature=0.5)
        no_content = client.complete(MESSAGES, temperature=0.5)  # empty replies are not cached: asked again
        client.complete(MESSAGES, temperature=0.5)

    assert (empty.text, empty.prompt_tokens, empty.completion_tokens, empty.cached) == ("", 0, 0, False)
    assert no_content.text == "" and len(server.requests) == 3
    assert caplog.text.count("sent no token usage") == 1
    assert client.ledger.snapshot().tokens == 0


def test_is_configured_and_api_key(monkeypatch):
    config = LLMConfig()
    assert not config.is_configured() and config.resolved_base_url() is None
    with pytest.raises(LLMAuthError, match=r"\$OPENAI_API_KEY"):
        config.api_key()

    monkeypatch.setenv("OPENAI_API_KEY", "sk-abc")
    assert config.is_configured() and config.api_key() == "sk-abc"
    monkeypatch.delenv("OPENAI_API_KEY")

    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    assert config.is_configured() and config.resolved_base_url() == "http://localhost:11434/v1"
    assert config.api_key() == "not-needed"
    monkeypatch.delenv("OPENAI_BASE_URL")

    local = LLMConfig(base_url="http://localhost:8000/v1", api_key_env="MY_LLM_KEY")
    assert local.is_configured() and local.api_key() == "not-needed"
    monkeypatch.setenv("MY_LLM_KEY", "sk-my-llm-key-7f3")
    assert local.api_key() == "sk-my-llm-key-7f3"
    assert "sk-my-llm-key-7f3" not in LLMConfig(api_key_env="MY_LLM_KEY").model_dump_json()
    custom = LLMConfig(api_key_env="MY_LLM_KEY")
    assert custom.is_configured() and custom.api_key() == "sk-my-llm-key-7f3"
    monkeypatch.delenv("MY_LLM_KEY")
    assert not custom.is_configured()


def test_missing_credentials_fail_before_any_request():
    client = LLMClient(LLMConfig(), sleep=Waits())
    with pytest.raises(LLMAuthError):
        client.complete(MESSAGES, temperature=0.5)
    assert client.ledger.snapshot().requests == 0 and client.ledger.snapshot().failures == 1
