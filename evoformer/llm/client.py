"""A chat-completion client for any OpenAI-compatible endpoint: cache, budget, counted retries."""

from __future__ import annotations

import email.utils
import ipaddress
import json
import logging
import math
import random
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx2
import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel, Field, ValidationError

from evoformer.layout import RunLayout
from evoformer.llm.cache import CachedReply, ReplyCache, reply_key
from evoformer.llm.config import LLMConfig
from evoformer.llm.errors import (
    LLMAuthError,
    LLMContextLengthError,
    LLMError,
    LLMRequestError,
    LLMUnavailableError,
)
from evoformer.llm.usage import UsageLedger

log = logging.getLogger(__name__)

OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
_TRANSIENT_4XX = (408, 429)  # request timeout, rate limit
_MAX_MESSAGE = 300
_STREAM_WORD = re.compile(r"\bstream(ing)?\b")  # not "upstream", not "stream_options"
PROBE_TIMEOUT_S = 5.0  # the one-off GET /props (and /slots) of concurrency()
LOOPBACK_CONCURRENCY = 1  # a loopback server that says nothing of its slots: one request at a time
DEFAULT_CONCURRENCY = 4  # a remote server, and the cap on the slots a server reports (fewer 429s)
_CONTEXT_LENGTH = re.compile(
    r"maximum context length|context_length_exceeded|exceeds? the available context size|context size|n_ctx"
    r"|longer than the model'?s context length|context window",
    re.IGNORECASE,
)


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


class _TooLong(Exception):
    """A streamed reply still running after ``max_seconds`` (abandoned; treated as transient)."""


def is_context_length_message(message: str) -> bool:
    """True when an error message says the prompt does not fit the model's context (OpenAI, llama.cpp, vLLM)."""
    return bool(_CONTEXT_LENGTH.search(message))


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


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
        self._in_flight = threading.BoundedSemaphore(config.max_concurrency or DEFAULT_CONCURRENCY)
        self._warned_no_usage = False
        self._streaming = True  # False once the server refused `stream` (for this client's lifetime)
        self._stream_usage = True  # False once the server refused `stream_options`
        self._concurrency: int | None = None
        self._concurrency_lock = threading.Lock()

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

    def concurrency(self) -> int:
        """How many requests to have in flight at once: ``max_concurrency`` when set, else what the server says.

        Asked once (then cached): llama.cpp's ``GET {root}/props`` → ``total_slots``, else the length of
        ``GET {root}/slots`` (``root`` is the base URL without ``/v1``), with a short timeout, capped at
        ``max_concurrency``. A server that answers neither: 1 when it is on a loopback address (one
        request at a time is safe: a local server's slots share its cores), else ``max_concurrency``
        (api.openai.com is not asked).
        """
        if self.config.max_concurrency is not None:
            return self.config.max_concurrency
        with self._concurrency_lock:
            if self._concurrency is None:
                self._concurrency = self._discover_concurrency()
            return self._concurrency

    def _discover_concurrency(self) -> int:
        cap = DEFAULT_CONCURRENCY
        base = self.config.resolved_base_url()
        if base is None:
            return cap
        parsed = urllib.parse.urlsplit(base)
        path = re.sub(r"/v1/?$", "", parsed.path.rstrip("/"))
        root = urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, path, "", ""))
        slots = self._probe(root + "/props", lambda body: body.get("total_slots") if isinstance(body, dict) else None)
        if slots is None:
            slots = self._probe(root + "/slots", lambda body: len(body) if isinstance(body, list) and body else None)
        if slots is not None:
            log.info("%s reports %d slot(s); %d request(s) in flight at once", self.endpoint, slots, min(slots, cap))
            return min(slots, cap)
        if _is_loopback(parsed.hostname or ""):
            log.info(
                "%s reports no slots (not llama.cpp?); one request at a time (set max_concurrency for more)",
                self.endpoint,
            )
            return LOOPBACK_CONCURRENCY
        return cap

    def _probe(self, url: str, read: Callable[[Any], object]) -> int | None:
        """``read`` of the JSON at ``url`` when it is a positive int, else None (any failure)."""
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            key = self.config.api_key()
        except LLMError:
            key = None
        if key:
            request.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(request, timeout=min(PROBE_TIMEOUT_S, self.config.timeout_s)) as response:
                value = read(json.loads(response.read(1_000_000)))
        except (OSError, ValueError) as err:  # URLError, HTTPError, timeouts, bad JSON
            log.debug("no slot count from %s (%s)", url, err)
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return None
        return value

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
        also sent to the server. The reply is streamed: ``timeout_s`` bounds the wait for its first chunk
        and each gap between chunks, ``max_seconds`` the whole of it. Raises :class:`BudgetExhausted`,
        :class:`LLMAuthError`, :class:`LLMRequestError` (:class:`LLMContextLengthError` when the prompt
        does not fit the model's context) or :class:`LLMUnavailableError`. Empty replies are returned, not cached.
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
            unreachable = False  # set below only when this attempt found no server at all
            try:
                return self._attempt(client, params, attempts)
            except openai.APIStatusError as err:
                status = err.status_code
                message = _status_message(err)
                if status in (401, 403) or isinstance(err, (openai.AuthenticationError, openai.PermissionDeniedError)):
                    raise LLMAuthError(
                        f"{self.endpoint} rejected the credentials (HTTP {status}: {message}); "
                        f"check ${self.config.api_key_env} (the API key env var) and base_url"
                    ) from err
                if 400 <= status < 500 and status not in _TRANSIENT_4XX and is_context_length_message(message):
                    raise self._context_error(params, f"HTTP {status}: {message}", status) from err
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
            except (openai.APIConnectionError, httpx2.TimeoutException, httpx2.RequestError) as err:
                # APITimeoutError included: no first token (or a stall) within timeout_s
                cause = f" ({err.__cause__})" if err.__cause__ is not None and str(err.__cause__) else ""
                last_error, asked = f"{type(err).__name__}: {err}{cause}"[:_MAX_MESSAGE], None
                unreachable = not isinstance(err, (openai.APITimeoutError, httpx2.TimeoutException))
            except openai.APIError as err:  # an error event in the middle of a stream
                message = str(err.message or err)[:_MAX_MESSAGE]
                if is_context_length_message(message):
                    raise self._context_error(params, message, None) from err
                last_error, asked = f"error in the stream: {message}", None
            except json.JSONDecodeError as err:
                last_error, asked = f"malformed reply: invalid JSON ({err})", None
            except (_Malformed, _TooLong) as err:
                last_error, asked = str(err), None
            if retries >= self.config.max_retries:
                raise LLMUnavailableError(
                    f"{self.endpoint} unavailable: gave up after {attempts} attempt(s); last error: {last_error}",
                    attempts,
                    last_error,
                    unreachable,
                )
            wait = self._backoff(retries, asked)
            log.warning(
                "LLM request failed (%s); retry %d/%d in %.2fs", last_error, retries + 1, self.config.max_retries, wait
            )
            retries += 1
            self.ledger.record_retry()
            self._sleep(wait)

    def _context_error(self, params: dict[str, Any], detail: str, status: int | None) -> LLMContextLengthError:
        return LLMContextLengthError(
            f"{self.endpoint}: the prompt does not fit the context of model {params['model']!r} "
            f"(with max_tokens={self.config.max_tokens} for the reply): {detail}",
            status,
        )

    def _attempt(self, client: openai.OpenAI, params: dict[str, Any], attempts: int) -> LLMReply:
        """One HTTP attempt: streamed unless the server refused streaming; the response is always closed."""
        if not self._streaming:
            completion = client.chat.completions.create(**params, timeout=self.config.max_seconds)
            return self._parse(completion, attempts)
        extra: dict[str, Any] = {"stream": True}
        if self._stream_usage:
            extra["stream_options"] = {"include_usage": True}
        started = time.monotonic()
        stream = client.chat.completions.create(**params, **extra, timeout=self.config.timeout_s)
        if not isinstance(stream, openai.Stream):
            return self._parse(stream, attempts)
        with stream:  # closed on every way out: a timeout, the total cap, an error, a return
            content_type = stream.response.headers.get("content-type", "")
            if "text/event-stream" not in content_type:  # a server that ignored `stream` (or an error page)
                body = json.loads(stream.response.read())
                try:
                    completion = ChatCompletion.model_validate(body)
                except ValidationError as err:
                    raise _Malformed(f"malformed reply: not a chat completion: {str(body)[:100]!r}") from err
                return self._parse(completion, attempts)
            return self._assemble(stream, attempts, started)

    def _assemble(self, chunks: Iterable[object], attempts: int, started: float) -> LLMReply:
        """The reply of a stream of chunks; abandons it past ``max_seconds`` (the caller closes it)."""
        parts: list[str] = []
        usage: object = None
        model: str | None = None
        finish_reason: str | None = None
        seen = 0
        for chunk in chunks:
            if not isinstance(chunk, ChatCompletionChunk):
                raise _Malformed(f"malformed reply: not a chat completion chunk: {str(chunk)[:100]!r}")
            seen += 1
            try:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices or []:
                    if getattr(choice, "index", 0) not in (0, None):
                        continue
                    delta = getattr(choice, "delta", None)
                    content = getattr(delta, "content", None)
                    if isinstance(content, str):
                        parts.append(content)
                    if isinstance(choice.finish_reason, str):
                        finish_reason = choice.finish_reason
            except (AttributeError, TypeError) as err:
                raise _Malformed(f"malformed reply: {err}") from err
            elapsed = time.monotonic() - started
            if elapsed > self.config.max_seconds:
                raise _TooLong(
                    f"reply abandoned after {elapsed:.0f}s (max_seconds={self.config.max_seconds:g}); "
                    f"{len(parts)} chunk(s) received"
                )
        if seen == 0:
            raise _Malformed("malformed reply: an empty stream")
        try:
            prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
            completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        except (TypeError, ValueError) as err:
            raise _Malformed(f"malformed reply: {err}") from err
        return self._account(
            "".join(parts), usage is not None, prompt_tokens, completion_tokens, attempts, model, finish_reason
        )

    def _fallback(self, params: dict[str, Any], status: int, message: str) -> dict[str, Any] | None:
        """The request without an optional feature the server refused with a 400, or None."""
        if status != 400:
            return None
        lowered = message.lower()
        if self._streaming and self._stream_usage and ("stream_options" in lowered or "include_usage" in lowered):
            log.info("the server refused stream_options (HTTP 400: %s); streaming without usage from now on", message)
            self._stream_usage = False
            return params
        if self._streaming and _STREAM_WORD.search(lowered):
            log.info("the server refused streaming (HTTP 400: %s); not streaming from now on", message)
            self._streaming = False
            return params
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
        return self._account(
            content if isinstance(content, str) else "",
            usage is not None,
            prompt_tokens,
            completion_tokens,
            attempts,
            getattr(completion, "model", None),
            finish_reason if isinstance(finish_reason, str) else None,
        )

    def _account(
        self,
        text: str,
        has_usage: bool,
        prompt_tokens: int,
        completion_tokens: int,
        attempts: int,
        model: str | None,
        finish_reason: str | None,
    ) -> LLMReply:
        """Count the reply's tokens (0 when the server sent no usage, warned once) and wrap it."""
        if not has_usage and not self._warned_no_usage:
            self._warned_no_usage = True
            log.warning("%s sent no token usage; counting 0 tokens (cost and token budget undercount)", self.endpoint)
        self.ledger.record_success(prompt_tokens, completion_tokens)
        return LLMReply(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            attempts=attempts,
            model=model or self.config.model,
            finish_reason=finish_reason,
        )


def open_client(config: LLMConfig, folder: str | Path) -> tuple[LLMClient, UsageLedger]:
    """A client whose replies are cached in ``folder/cache`` and whose usage resumes from ``folder/usage.json``."""
    folder = Path(folder)
    usage_path = folder / RunLayout.USAGE_FILE
    ledger = UsageLedger.load(usage_path, config) if usage_path.is_file() else UsageLedger(config)
    return LLMClient(config, ReplyCache(folder / "cache"), ledger), ledger
