"""A scripted, loopback OpenAI-compatible server for tests of the LLM client.

Each request to ``POST /v1/chat/completions`` consumes the next step of the script:

* :class:`Reply` — a normal chat completion (``content``; token counts derived from text length
  unless given; ``usage=False`` leaves the usage block out, ``choices=False`` sends no choices);
* :class:`Error` — an HTTP error (``status``, ``headers`` such as ``{"Retry-After": "1"}``), body in
  the OpenAI error shape ``{"error": {"message", "type", "code", "param"}}``;
* :class:`Raw` — any body and status as given (malformed replies).

Every step takes ``delay_s``: the server waits that long before answering (to exceed a client
timeout). Plain dicts work too: ``{"content": ...}`` is a Reply, ``{"status": ...}`` an Error and
``{"body": ...}`` a Raw. Once the script is used up the ``default`` callable ``(request_json) ->
step`` answers; without one the server answers 500 with a message saying the script is exhausted.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

DEFAULT_MODEL = "scripted-model"


def approx_tokens(text: str) -> int:
    """A stand-in token count: one token per four characters, at least one."""
    return max(1, len(text) // 4)


@dataclass
class Reply:
    """A normal chat-completion reply."""

    content: str | None = "ok"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    usage: bool = True
    choices: bool = True
    finish_reason: str = "stop"
    model: str | None = None
    delay_s: float = 0.0
    chunks: int = 3
    first_chunk_delay_s: float = 0.0
    chunk_delay_s: float = 0.0


@dataclass
class Error:
    """An HTTP error in the OpenAI error shape."""

    status: int
    message: str = "scripted error"
    headers: dict[str, str] = field(default_factory=dict)
    type: str = "scripted_error"
    code: str | None = None
    delay_s: float = 0.0


@dataclass
class Raw:
    """A body sent as is (malformed JSON, HTML from a proxy, a wrong shape...)."""

    body: str | bytes
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


CONTEXT_LENGTH_MESSAGES = {
    "openai": "This model's maximum context length is 16385 tokens. However, your messages resulted in "
    "20000 tokens. Please reduce the length of the messages.",
    "llama.cpp": "the request exceeds the available context size, try increasing it",
    "vllm": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens "
    "(4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.",
    "vllm-new": "The decoder prompt (length 9000) is longer than the model's context length (8192).",
}


def context_length_error(server: str = "llama.cpp") -> Error:
    """The HTTP 400 that ``server`` (a key of ``CONTEXT_LENGTH_MESSAGES``) sends for a too-long prompt."""
    kinds = {"llama.cpp": "exceed_context_size_error", "openai": "invalid_request_error"}
    code = "context_length_exceeded" if server == "openai" else None
    return Error(400, CONTEXT_LENGTH_MESSAGES[server], type=kinds.get(server, "BadRequestError"), code=code)


Step = Reply | Error | Raw
StepLike = Step | dict


def as_step(step: StepLike) -> Step:
    """Turn a dict step into its dataclass (``status`` → Error, ``body`` → Raw, else Reply)."""
    if isinstance(step, (Reply, Error, Raw)):
        return step
    if not isinstance(step, dict):
        raise TypeError(f"a script step is a Reply, Error, Raw or dict, not {type(step).__name__}")
    if "body" in step:
        return Raw(**step)
    if "status" in step:
        return Error(**step)
    return Reply(**step)


def _prompt_text(request: dict[str, Any]) -> str:
    parts = []
    for message in request.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        parts.append(content if isinstance(content, str) else json.dumps(content))
    return "\n".join(parts)


def completion_body(step: Reply, request: dict[str, Any], created: int) -> dict[str, Any]:
    """The JSON of a chat completion for ``step`` answering ``request``."""
    body: dict[str, Any] = {
        "id": f"chatcmpl-scripted-{created}",
        "object": "chat.completion",
        "created": created,
        "model": step.model or request.get("model") or DEFAULT_MODEL,
        "choices": [],
    }
    if step.choices:
        body["choices"] = [
            {
                "index": 0,
                "message": {"role": "assistant", "content": step.content},
                "finish_reason": step.finish_reason,
                "logprobs": None,
            }
        ]
    if step.usage:
        prompt = step.prompt_tokens if step.prompt_tokens is not None else approx_tokens(_prompt_text(request))
        completion = step.completion_tokens if step.completion_tokens is not None else approx_tokens(step.content or "")
        body["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    return body


def split_content(content: str, pieces: int) -> list[str]:
    """``content`` in ``pieces`` consecutive parts (fewer when it is shorter); [] for an empty content."""
    if not content:
        return []
    pieces = max(1, min(pieces, len(content)))
    size = -(-len(content) // pieces)
    return [content[i : i + size] for i in range(0, len(content), size)]


def chunk_bodies(step: Reply, request: dict[str, Any], created: int) -> list[dict[str, Any]]:
    """The chat-completion chunks of ``step`` streamed in answer to ``request``."""
    model = step.model or request.get("model") or DEFAULT_MODEL
    options = request.get("stream_options")
    with_usage = isinstance(options, dict) and bool(options.get("include_usage"))

    def chunk(choices: list[dict[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": f"chatcmpl-scripted-{created}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
        }
        if with_usage:
            body["usage"] = None
        return body

    chunks: list[dict[str, Any]] = []
    if step.choices:
        pieces = split_content(step.content, step.chunks) if step.content is not None else [None]
        for i, piece in enumerate(pieces):
            delta: dict[str, Any] = {"content": piece}
            if i == 0:
                delta["role"] = "assistant"
            chunks.append(chunk([{"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}]))
        chunks.append(chunk([{"index": 0, "delta": {}, "finish_reason": step.finish_reason, "logprobs": None}]))
    else:
        chunks.append(chunk([]))
    if with_usage and step.usage:
        final = completion_body(step, request, created)
        chunks.append(chunk([]) | {"usage": final["usage"]})
    return chunks


class ScriptedLLMServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1 that answers from a script (a context manager)."""

    def __init__(
        self,
        steps: Iterable[StepLike] = (),
        *,
        default: Callable[[dict[str, Any]], StepLike] | None = None,
        model: str = DEFAULT_MODEL,
        stream_supported: bool = True,
        total_slots: int | None = None,
    ) -> None:
        self._steps: list[Step] = [as_step(s) for s in steps]
        self.default = default
        self.model = model
        self.stream_supported = stream_supported
        self.total_slots = total_slots
        self.requests: list[dict[str, Any]] = []
        self.disconnects: list[int] = []  # requests whose client left before the reply was finished
        self.finished: list[int] = []  # requests answered in full
        self.gets: list[str] = []  # paths of GET requests
        self.request_headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- script -------------------------------------------------------------------------------
    def add(self, *steps: StepLike) -> None:
        """Append steps to the script."""
        with self._lock:
            self._steps.extend(as_step(s) for s in steps)

    @property
    def remaining(self) -> int:
        """Steps not consumed yet."""
        with self._lock:
            return len(self._steps)

    def _next_step(self, request: dict[str, Any], headers: dict[str, str]) -> tuple[int, Step]:
        with self._lock:
            self.requests.append(request)
            self.request_headers.append(headers)
            index = len(self.requests) - 1
            if request.get("stream") and not self.stream_supported:
                return index, Error(400, "'stream' is not supported by this server", type="invalid_request_error")
            if self._steps:
                return index, self._steps.pop(0)
        if self.default is not None:
            return index, as_step(self.default(request))
        return index, Error(500, f"ScriptedLLMServer: script exhausted ({index} earlier request(s) served)")

    def _record(self, where: list[int], index: int) -> None:
        with self._lock:
            where.append(index)

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        if self._httpd is None:
            raise RuntimeError("the server is not running")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> ScriptedLLMServer:
        """Bind a free loopback port and serve in a daemon thread."""
        if self._httpd is not None:
            return self
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="scripted-llm", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving (delayed replies are cut short) and free the port."""
        self._closing.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> ScriptedLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler_for(server: ScriptedLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default stderr log
            pass

        def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> bool:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return False  # the client gave up (timeout): nothing to answer
            return True

        def _send_json(self, status: int, payload: object, headers: dict[str, str] | None = None) -> bool:
            return self._send(status, json.dumps(payload).encode(), "application/json", headers)

        def _client_gone(self) -> bool:
            """True once the client closed its end (EOF or reset on the socket)."""
            sock: socket.socket = self.connection
            try:
                readable, _, _ = select.select([sock], [], [], 0)
                return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
            except (OSError, ValueError):
                return True

        def _wait(self, seconds: float) -> bool:
            """Wait ``seconds``; False (cut short) when the server closes or the client leaves."""
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                if server._closing.wait(min(0.02, left)):
                    return False
                if self._client_gone():
                    return False
            return True

        def _stream(self, index: int, step: Reply, request: dict[str, Any]) -> None:
            """Send ``step`` as server-sent events in chunked transfer encoding."""
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()
                events = [f"data: {json.dumps(c)}\n\n" for c in chunk_bodies(step, request, int(time.time()))]
                events.append("data: [DONE]\n\n")
                for i, event in enumerate(events):
                    delay = step.first_chunk_delay_s if i == 0 else step.chunk_delay_s
                    if (delay > 0 and not self._wait(delay)) or self._client_gone():
                        raise ConnectionResetError("the client left")
                    data = event.encode()
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                if not server._closing.is_set():
                    server._record(server.disconnects, index)
                self.close_connection = True
                return
            server._record(server.finished, index)

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            path = self.path.rstrip("/")
            with server._lock:
                server.gets.append(path)
            slots = server.total_slots
            if path in ("/props", "/slots") and slots is not None:
                if path == "/props":
                    self._send_json(200, {"total_slots": slots, "model_alias": server.model})
                else:
                    self._send_json(200, [{"id": i, "is_processing": False} for i in range(slots)])
                return
            if path != "/v1/models":
                self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            model = {"id": server.model, "object": "model", "created": 0, "owned_by": "scripted"}
            self._send_json(200, {"object": "list", "data": [model]})

        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            try:
                request = json.loads(raw or b"{}")
            except ValueError:
                request = {"_unparsed": raw.decode("utf-8", "replace")}
            index, step = server._next_step(request, dict(self.headers.items()))
            if step.delay_s > 0 and not self._wait(step.delay_s):
                if not server._closing.is_set():
                    server._record(server.disconnects, index)
                self.close_connection = True
                return
            if isinstance(step, Reply) and isinstance(request, dict) and request.get("stream"):
                self._stream(index, step, request)
                return
            if isinstance(step, Reply):
                sent = self._send_json(200, completion_body(step, request, int(time.time())))
            elif isinstance(step, Error):
                error = {"message": step.message, "type": step.type, "param": None, "code": step.code}
                sent = self._send_json(step.status, {"error": error}, step.headers)
            else:
                body = step.body.encode() if isinstance(step.body, str) else step.body
                sent = self._send(step.status, body, step.content_type, step.headers)
            server._record(server.finished if sent else server.disconnects, index)

    return Handler


@pytest.fixture
def scripted_llm_server() -> Iterator[Callable[..., ScriptedLLMServer]]:
    """A factory: ``scripted_llm_server(steps, default=None)`` starts a server, closed after the test."""
    servers: list[ScriptedLLMServer] = []

    def start(steps: Iterable[StepLike] = (), **kwargs: Any) -> ScriptedLLMServer:
        server = ScriptedLLMServer(steps, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
