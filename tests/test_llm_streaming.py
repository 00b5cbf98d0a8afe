"""The LLM client's streamed replies and timeouts, and its context-length errors, against a scripted server."""

from __future__ import annotations

import json
import logging
import time

import llm_server
import pytest
from llm_clients import MESSAGES, clean_env, make_client, wait_for
from llm_server import Error, Raw, Reply, context_length_error

from evoformer.llm import (
    LLMContextLengthError,
    LLMRequestError,
    LLMUnavailableError,
    ReplyCache,
    reply_key,
)
from evoformer.llm.client import is_context_length_message

__all__ = ["clean_env"]  # the autouse fixture: no ambient OpenAI settings, clients closed


# -- streaming ------------------------------------------------------------------------------------


def test_streamed_reply_is_assembled_and_usage_counted(scripted_llm_server, tmp_path):
    content = "def build_model():\n    return nn.Linear(4, 2)\n"
    server = scripted_llm_server([Reply(content, chunks=7, prompt_tokens=120, completion_tokens=14)])
    client, waits = make_client(server, tmp_path / "cache", price_completion_per_1k=1.0)

    reply = client.complete(MESSAGES, temperature=0.3)

    assert reply.text == content and reply.finish_reason == "stop" and reply.model == "test-model"
    assert (reply.prompt_tokens, reply.completion_tokens, reply.attempts) == (120, 14, 1)
    [body] = server.requests
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    # the server records a request as finished just after its last bytes: the client may be faster
    assert wait_for(lambda: server.finished == [0]), (server.finished, server.disconnects)
    assert server.disconnects == [] and waits == []
    usage = client.ledger.snapshot()
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cost_usd) == (120, 14, pytest.approx(0.014))
    [stored] = (tmp_path / "cache").glob("*.json")  # the cached reply keeps its old shape
    assert set(json.loads(stored.read_text())) == {
        "text",
        "prompt_tokens",
        "completion_tokens",
        "model",
        "finish_reason",
        "created",
    }


def test_old_cache_entries_stay_readable(scripted_llm_server, tmp_path):
    old = {"text": "cached", "prompt_tokens": 5, "completion_tokens": 2, "model": "m", "finish_reason": "stop"}
    old["created"] = "2026-01-01T00:00:00+00:00"
    cache = ReplyCache(tmp_path / "cache")
    cache.folder.mkdir()
    cache.path(reply_key("test-model", MESSAGES, 0.5, 0, None)).write_text(json.dumps(old))
    server = scripted_llm_server([])
    client, _ = make_client(server, tmp_path / "cache")
    reply = client.complete(MESSAGES, temperature=0.5)
    assert (reply.text, reply.cached, reply.prompt_tokens) == ("cached", True, 5) and server.requests == []


def test_first_token_timeout_retries_and_closes_the_first_connection(scripted_llm_server):
    # the first request's headers come at once but its first token only after 5 s (a queued request)
    server = scripted_llm_server([Reply("too late", first_chunk_delay_s=5.0), Reply("in time")])
    client, waits = make_client(server, timeout_s=0.5)

    started = time.monotonic()
    reply = client.complete(MESSAGES, temperature=0.5)

    assert time.monotonic() - started < 3.0
    assert reply.text == "in time" and reply.attempts == 2 and len(waits) == 1
    assert client.ledger.snapshot().retries == 1
    # the abandoned request's connection was closed (the server noticed long before its 5 s were up)
    assert wait_for(lambda: server.disconnects == [0], 1.5), (server.disconnects, server.finished)
    assert wait_for(lambda: server.finished == [1]), server.finished  # recorded just after the last bytes


def test_a_stall_between_chunks_is_a_timeout(scripted_llm_server):
    server = scripted_llm_server([Reply("abcdef", chunks=3, chunk_delay_s=5.0), Reply("whole")])
    client, waits = make_client(server, timeout_s=0.5)
    reply = client.complete(MESSAGES, temperature=0.5)
    assert reply.text == "whole" and reply.attempts == 2 and len(waits) == 1
    assert wait_for(lambda: server.disconnects == [0], 1.5), server.disconnects


def test_slow_but_streaming_reply_is_not_cut_by_timeout_s(scripted_llm_server):
    # 12 chunks 0.4 s apart: about 5 s in all, far beyond timeout_s, but no gap comes near it
    # (a wide margin: the suite runs on busy cores)
    server = scripted_llm_server([Reply("x" * 12, chunks=12, chunk_delay_s=0.4, first_chunk_delay_s=0.4)])
    client, waits = make_client(server, timeout_s=2.0, max_retries=0)

    started = time.monotonic()
    reply = client.complete(MESSAGES, temperature=0.5)

    assert time.monotonic() - started > 4.0
    assert reply.text == "x" * 12 and reply.attempts == 1 and waits == []
    assert wait_for(lambda: server.finished == [0]), server.finished  # recorded just after the last bytes
    assert server.disconnects == []


def test_max_seconds_caps_a_whole_reply_and_closes_it(scripted_llm_server):
    server = scripted_llm_server([Reply("y" * 20, chunks=20, chunk_delay_s=0.2)])
    client, _ = make_client(server, timeout_s=5, max_seconds=0.7, max_retries=0)

    started = time.monotonic()
    with pytest.raises(LLMUnavailableError, match="max_seconds") as info:
        client.complete(MESSAGES, temperature=0.5)

    assert time.monotonic() - started < 2.0 and info.value.attempts == 1
    assert wait_for(lambda: server.disconnects == [0], 1.5), server.disconnects


def test_stream_without_usage_counts_nothing(scripted_llm_server, caplog):
    server = scripted_llm_server([Reply("no usage here", usage=False), Reply("again", usage=False)])
    client, _ = make_client(server)
    with caplog.at_level(logging.WARNING, logger="evoformer.llm.client"):
        first = client.complete(MESSAGES, temperature=0.1)
        client.complete(MESSAGES, temperature=0.2)
    assert first.text == "no usage here" and (first.prompt_tokens, first.completion_tokens) == (0, 0)
    assert caplog.text.count("sent no token usage") == 1 and client.ledger.snapshot().tokens == 0


def test_non_streaming_fallback_is_remembered(scripted_llm_server):
    server = scripted_llm_server([Reply("plain 1", prompt_tokens=9), Reply("plain 2")], stream_supported=False)
    client, waits = make_client(server)

    first = client.complete(MESSAGES, temperature=0.5)
    second = client.complete(MESSAGES, temperature=0.6)

    assert (first.text, first.attempts, first.prompt_tokens) == ("plain 1", 2, 9)
    assert (second.text, second.attempts) == ("plain 2", 1)
    assert [r.get("stream") for r in server.requests] == [True, None, None]
    assert "stream_options" not in server.requests[1] and waits == []
    usage = client.ledger.snapshot()
    assert (usage.requests, usage.retries, usage.failures) == (3, 0, 0)


def test_stream_options_refused_streams_without_them(scripted_llm_server):
    refusal = "Unrecognized request argument supplied: stream_options"
    server = scripted_llm_server([Error(400, refusal), Reply("streamed"), Reply("again")])
    client, waits = make_client(server)
    assert client.complete(MESSAGES, temperature=0.5).text == "streamed"
    assert client.complete(MESSAGES, temperature=0.6).text == "again"
    assert [r.get("stream") for r in server.requests] == [True, True, True]
    assert [("stream_options" in r) for r in server.requests] == [True, False, False] and waits == []


def test_a_server_that_ignores_stream_and_answers_json(scripted_llm_server):
    body = llm_server.completion_body(Reply("as json", prompt_tokens=3, completion_tokens=2), {"model": "m"}, 0)
    server = scripted_llm_server([Raw(json.dumps(body))])
    client, _ = make_client(server)
    reply = client.complete(MESSAGES, temperature=0.5)
    assert (reply.text, reply.prompt_tokens, reply.completion_tokens) == ("as json", 3, 2)


# -- context length -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(llm_server.CONTEXT_LENGTH_MESSAGES))
@pytest.mark.parametrize("json_mode", [False, True])
def test_context_length_400_is_not_retried(scripted_llm_server, kind, json_mode):
    server = scripted_llm_server([context_length_error(kind), Reply("never")])
    client, waits = make_client(server)

    with pytest.raises(LLMContextLengthError) as info:
        client.complete(MESSAGES, temperature=0.5, json_mode=json_mode)

    assert isinstance(info.value, LLMRequestError) and info.value.status == 400
    assert "does not fit the context" in str(info.value)
    assert len(server.requests) == 1 and server.remaining == 1 and waits == []
    usage = client.ledger.snapshot()
    assert (usage.requests, usage.retries, usage.failures) == (1, 0, 1)


def test_context_length_messages():
    for message in [*llm_server.CONTEXT_LENGTH_MESSAGES.values(), "n_ctx is 4096, the prompt has 5000 tokens"]:
        assert is_context_length_message(message), message
    for message in ["temperature must be at most 2", "model 'x' not found", "context too long"]:
        assert not is_context_length_message(message), message


def test_other_400_is_not_a_context_length_error(scripted_llm_server):
    server = scripted_llm_server([Error(400, "temperature must be at most 2")])
    client, _ = make_client(server)
    with pytest.raises(LLMRequestError) as info:
        client.complete(MESSAGES, temperature=5.0)
    assert not isinstance(info.value, LLMContextLengthError)
