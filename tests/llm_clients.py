"""The LLM client tests' helpers: a client of a scripted server whose sleeps are recorded, and a
clean OpenAI environment (``clean_env``: import it into a test module, it is autouse)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from llm_server import ScriptedLLMServer

from evoformer.llm import LLMClient, LLMConfig, ReplyCache

MESSAGES = [{"role": "system", "content": "You write PyTorch."}, {"role": "user", "content": "Mutate this model."}]

CLIENTS: list[LLMClient] = []


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No ambient OpenAI settings; the test's clients are closed after it."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_CUSTOM_HEADERS"):
        monkeypatch.delenv(name, raising=False)
    yield
    while CLIENTS:
        CLIENTS.pop().close()


class Waits(list):
    """A fake ``sleep`` that records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_client(server: ScriptedLLMServer | str, cache_dir: Path | None = None, **config) -> tuple[LLMClient, Waits]:
    base_url = server if isinstance(server, str) else server.base_url
    config.setdefault("backoff_initial_s", 0.01)
    waits = Waits()
    client = LLMClient(
        LLMConfig(base_url=base_url, model="test-model", **config),
        cache=ReplyCache(cache_dir) if cache_dir is not None else None,
        sleep=waits,
        rng=random.Random(0),
    )
    CLIENTS.append(client)
    return client, waits


def wait_for(condition, seconds: float = 2.0) -> bool:
    """Poll ``condition`` (the server's threads record what they noticed a moment later)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
