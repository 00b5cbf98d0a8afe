"""A chat-completion client for any OpenAI-compatible endpoint: cache, budget, counted retries."""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from pathlib import Path
from typing import Any

import openai
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, Field

from evoformer.layout import RunLayout
from evoformer.llm.cache import CachedReply, ReplyCache, reply_key
from evoformer.llm.config import LLMConfig
from evoformer.llm.errors import LLMAuthError, LLMError, LLMRequestError, LLMUnavailableError
from evoformer.llm.usage import UsageLedger

log = logging.getLogger(__name__)

OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
_TRANSIENT_4XX = (408, 429)  # request timeout, rate limit
_MAX_MESSAGE = 300


class LLMReply(BaseModel):
    """The text of one reply and what it cost."""

    text: str = Field(description="The reply's content; empty when the server sent no choice or no content.")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = Field(default=False, description="Answered from the reply cache (no request, no cost).")
    attempts: int = Field(default=0, description="HTTP attempts this call made (0 when cached).")
    model: str = Field(description="The model that answered, as the server names it.")
    finish_reason: str | None = Field(default=None, description="'stop', 'length' (truncated)...")


class _Malformed(Exception):
    """A 200 reply whose body is not a chat completion (treated as transient)."""


def retry_after_seconds(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """The wait a server asks for: ``retry-after-ms``, else ``Retry-After`` in seconds or as an HTTP date."""
    if not headers:
        return None
    lowered = {name.lower(): value for name, value in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis:
        try:
            seconds = float(millis) / 1000
            return None if math.isnan(seconds) else max(0.0, seconds)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return None if math.isnan(seconds) else max(0.0, seconds)


def _status_message(err: openai.APIStatusError) -> str:
    body = err.body
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or err.message or err)[:_MAX_MESSAGE]


class LLMClient:
    """Chat completions with a reply cache, a usage ledger and budget, and retries it counts itself.

    ``sleep`` and ``rng`` are injectable so tests neither wait nor depend on jitter.
    """

    def __init__(
        self,
        config: LLMConfig,
        cache: ReplyCache | None = None,
        ledger: UsageLedger | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.cache = cache
        self.ledger = ledger if ledger is not None else UsageLedger(config)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._client: openai.OpenAI | None = None
        self._lock = threading.Lock()
        self._in_flight = threading.BoundedSemaphore(config.max_concurrency)
        self._warned_no_usage = False

    @property
    def endpoint(self) -> str:
        """The base URL requests go to."""
        return self.config.resolved_base_url() or OPENAI_DEFAULT_URL

    def _openai(self) -> openai.OpenAI:
        with self._lock:
            if self._client is None:
                self._client = openai.OpenAI(
                    api_key=self.config.api_key(),
                    base_url=self.config.resolved_base_url(),
                    timeout=self.config.timeout_s,
                    max_retries=0,  # retries are ours, so that they are counted and logged
                )
            return self._client

    def close(self) -> None:
        """Close the HTTP connections (a later call opens new ones)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(
        self,
        messages: list[dict[str, Any]],
        temperature: float,
        sample_index: int = 0,
        seed: int | None = None,
        json_mode: bool = False,
    ) -> LLMReply:
        """One chat completion: from the cache if there, else (budget permitting) from the endpoint.

        ``sample_index`` only selects a cache entry (several samples of one prompt); ``seed`` is
        also sent to the server. Raises :class:`BudgetExhausted`, :class:`LLMAuthError`,
        :class:`LLMRequestError` or :class:`LLMUnavailableError`. Empty replies are returned, not cached.
        """
        if not messages:
            raise ValueError("messages must not be empty")
        key = reply_key(
            self.config.model, messages, temperature, sample_index, seed, {"json_mode": True} if json_mode else None
        )
        hit = self.cache.get(key) if self.cache is not None else None
        if hit is not None:
            self.ledger.record_cache_hit()
            return LLMReply(**hit.model_dump(exclude={"created"}), cached=True, attempts=0)
        self.ledger.check_budget()
        params: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": self.config.max_tokens,
        }
        if seed is not None:
            params["seed"] = seed
        if json_mode:
            params["response_format"] = {"type": "json_object"}
        try:
            with self._in_flight:
                reply = self._send(params)
        except LLMError:
            self.ledger.record_failure()
            raise
        if self.cache is not None and reply.text:
            try:
                self.cache.put(key, CachedReply(**reply.model_dump(exclude={"cached", "attempts"})))
            except OSError as err:  # the reply is paid for: keep it, even if it cannot be stored
                log.warning("LLM cache: cannot store a reply in %s (%s)", self.cache.folder, err)
        return reply

    def _send(self, params: dict[str, Any]) -> LLMReply:
        """Send with retries on transient errors; downgrade once on a 400 to optional features."""
        client = self._openai()
        attempts = retries = 0
        while True:
            attempts += 1
            self.ledger.record_attempt()
            try:
                return self._parse(client.chat.completions.create(**params), attempts)
            except openai.APIStatusError as err:
                status = err.status_code
                message = _status_message(err)
                if status in (401, 403) or isinstance(err, (openai.AuthenticationError, openai.PermissionDeniedError)):
                    raise LLMAuthError(
                        f"{self.endpoint} rejected the credentials (HTTP {status}: {message}); "
                        f"check ${self.config.api_key_env} (the API key env var) and base_url"
                    ) from err
                fallback = self._fallback(params, status, message)
                if fallback is not None:
                    params = fallback
                    continue
                if status < 500 and status not in _TRANSIENT_4XX:
                    raise LLMRequestError(
                        f"{self.endpoint} rejected the request for model {params['model']!r} "
                        f"(HTTP {status}): {message}",
                        status,
                    ) from err
                last_error, asked = f"HTTP {status}: {message}", retry_after_seconds(err.response.headers)
            except openai.APIConnectionError as err:  # APITimeoutError included
                cause = f" ({err.__cause__})" if err.__cause__ is not None and str(err.__cause__) else ""
                last_error, asked = f"{type(err).__name__}: {err}{cause}"[:_MAX_MESSAGE], None
            except json.JSONDecodeError as err:
                last_error, asked = f"malformed reply: invalid JSON ({err})", None
            except _Malformed as err:
                last_error, asked = str(err), None
            if retries >= self.config.max_retries:
                raise LLMUnavailableError(
                    f"{self.endpoint} unavailable: gave up after {attempts} attempt(s); last error: {last_error}",
                    attempts,
                    last_error,
                )
            wait = self._backoff(retries, asked)
            log.warning(
                "LLM request failed (%s); retry %d/%d in %.2fs", last_error, retries + 1, self.config.max_retries, wait
            )
            retries += 1
            self.ledger.record_retry()
            self._sleep(wait)

    def _fallback(self, params: dict[str, Any], status: int, message: str) -> dict[str, Any] | None:
        """The request without an optional feature the server refused with a 400, or None."""
        if status != 400:
            return None
        if "response_format" in params:
            log.info("the server refused JSON mode (HTTP 400: %s); asking again without it", message)
            return {k: v for k, v in params.items() if k != "response_format"}
        if "max_tokens" in params and "max_completion_tokens" in message:
            log.info("the model wants max_completion_tokens instead of max_tokens; asking again")
            fallback = {k: v for k, v in params.items() if k != "max_tokens"}
            fallback["max_completion_tokens"] = params["max_tokens"]
            return fallback
        return None

    def _backoff(self, retry_index: int, asked: float | None) -> float:
        """Exponential backoff with jitter, and at least the server's (capped) Retry-After."""
        cfg = self.config
        wait = min(cfg.backoff_max_s, cfg.backoff_initial_s * 2.0 ** min(retry_index, 60)) * self._rng.uniform(0.5, 1.0)
        if asked is not None:
            wait = max(wait, min(asked, cfg.retry_after_max_s))
        return wait

    def _parse(self, completion: object, attempts: int) -> LLMReply:
        """Text and usage of a completion; account the tokens."""
        if not isinstance(completion, ChatCompletion):
            raise _Malformed(f"malformed reply: not a chat completion: {str(completion)[:100]!r}")
        try:
            choices = completion.choices or []
            choice = choices[0] if choices else None
            message = getattr(choice, "message", None)
            content = getattr(message, "content", None)
            finish_reason = getattr(choice, "finish_reason", None)
            usage = completion.usage
            prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
            completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        except (AttributeError, TypeError, ValueError) as err:
            raise _Malformed(f"malformed reply: {err}") from err
        if usage is None and not self._warned_no_usage:
            self._warned_no_usage = True
            log.warning("%s sent no token usage; counting 0 tokens (cost and token budget undercount)", self.endpoint)
        self.ledger.record_success(prompt_tokens, completion_tokens)
        return LLMReply(
            text=content if isinstance(content, str) else "",
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            attempts=attempts,
            model=getattr(completion, "model", None) or self.config.model,
            finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        )


def open_client(config: LLMConfig, folder: str | Path) -> tuple[LLMClient, UsageLedger]:
    """A client whose replies are cached in ``folder/cache`` and whose usage resumes from ``folder/usage.json``."""
    folder = Path(folder)
    usage_path = folder / RunLayout.USAGE_FILE
    ledger = UsageLedger.load(usage_path, config) if usage_path.is_file() else UsageLedger(config)
    return LLMClient(config, ReplyCache(folder / "cache"), ledger), ledger
