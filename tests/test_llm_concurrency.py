"""How many requests the LLM client keeps in flight: its cap, and the server's slots."""

from __future__ import annotations

import json

from llm_clients import CLIENTS, Waits, clean_env, make_client

from evoformer.llm import (
    LLMClient,
    LLMConfig,
)

__all__ = ["clean_env"]  # the autouse fixture: no ambient OpenAI settings, clients closed


def test_requests_in_flight_are_capped(monkeypatch) -> None:
    import threading
    import time as _time

    from evoformer.llm import LLMClient, LLMConfig
    from evoformer.llm.client import LLMReply

    client = LLMClient(LLMConfig(base_url="http://127.0.0.1:9/v1", max_concurrency=2))
    lock, state = threading.Lock(), {"now": 0, "peak": 0}

    def fake_send(params):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        _time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return LLMReply(text="x", model="m")

    monkeypatch.setattr(client, "_send", fake_send)
    threads = [
        threading.Thread(target=client.complete, args=([{"role": "user", "content": str(i)}], 0.2)) for i in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state["peak"] == 2


# -- requests in flight ---------------------------------------------------------------------------


def test_concurrency_from_props_is_asked_once(scripted_llm_server):
    server = scripted_llm_server([], total_slots=3)
    client, _ = make_client(server)
    assert client.concurrency() == 3 and client.concurrency() == 3
    assert server.gets == ["/props"]


def test_concurrency_from_props_is_capped(scripted_llm_server):
    server = scripted_llm_server([], total_slots=16)
    client, _ = make_client(server)
    assert client.concurrency() == 4


def test_concurrency_from_max_concurrency_asks_nothing(scripted_llm_server):
    server = scripted_llm_server([], total_slots=3)
    client, _ = make_client(server, max_concurrency=6)
    assert client.concurrency() == 6 and server.gets == []


def test_concurrency_of_a_loopback_server_that_reports_nothing_is_one(scripted_llm_server):
    server = scripted_llm_server([])  # /props and /slots answer 404 (not llama.cpp)
    client, _ = make_client(server)
    assert client.concurrency() == 1
    assert server.gets == ["/props", "/slots"]


def test_concurrency_from_slots_and_remote_fallback(monkeypatch):
    import io
    import urllib.error

    asked: list[str] = []

    def fake_urlopen(request, timeout):
        asked.append(request.full_url)
        assert timeout <= 5.0
        if request.full_url.endswith("/slots") and "slots-host" in request.full_url:
            return io.BytesIO(json.dumps([{"id": 0}, {"id": 1}]).encode())
        raise urllib.error.URLError("no route")

    monkeypatch.setattr("evoformer.llm.client.urllib.request.urlopen", fake_urlopen)
    slots, _ = make_client("http://slots-host:8080/v1")
    assert slots.concurrency() == 2
    assert asked == ["http://slots-host:8080/props", "http://slots-host:8080/slots"]

    asked.clear()
    remote, _ = make_client("https://llm.example.com/api/v1")
    assert remote.concurrency() == 4  # DEFAULT_CONCURRENCY
    assert asked == ["https://llm.example.com/api/props", "https://llm.example.com/api/slots"]

    asked.clear()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    openai_client = LLMClient(LLMConfig(), sleep=Waits())
    CLIENTS.append(openai_client)
    assert openai_client.concurrency() == 4 and asked == []  # api.openai.com is not asked
