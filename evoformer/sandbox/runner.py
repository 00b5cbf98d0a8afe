"""Start a sandboxed Python process, talk to it over a private pipe, keep only output tails."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from evoformer.sandbox.isolation import (
    PidsCgroup, bubblewrap_command, bubblewrap_problem, describe_isolation, launcher_command, log,
)
from evoformer.sandbox.limits import SandboxLimits, sandbox_environment
from evoformer.sandbox.protocol import PROTOCOL_ENV

MAX_MESSAGE_BYTES = 4_000_000


class SandboxError(RuntimeError):
    """The sandbox itself could not be set up (an infrastructure failure, worth a retry)."""


class SandboxRun(BaseModel):
    """What the orchestrator learns about one sandboxed process."""

    returncode: int | None
    timed_out: bool
    wall_s: float
    stdout_tail: str
    stderr_tail: str
    stdout_bytes: int
    stderr_bytes: int
    isolation: str
    protocol_error: str | None = None


class _Tail:
    def __init__(self, cap: int) -> None:
        self.cap, self.data, self.total = cap, bytearray(), 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data += chunk
        if len(self.data) > self.cap:
            del self.data[: len(self.data) - self.cap]

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def run_sandboxed(
    module: str,
    folder: Path,
    limits: SandboxLimits,
    on_message: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    read_only: list[Path] = (),
) -> SandboxRun:
    """Run ``python -m module folder`` in the sandbox. ``on_message`` answers each protocol message;
    ``read_only`` paths (such as the features) stay readable even under the private /tmp."""
    folder = Path(folder).resolve()
    problem = bubblewrap_problem()
    if problem and limits.require_isolation:
        raise SandboxError(f"OS isolation required but unavailable: {problem}")
    if problem:
        log.warning("SANDBOX IS WEAKER THAN IT SHOULD BE: %s. Untrusted code runs with rlimits and an audit hook only.", problem)

    to_parent_r, to_parent_w = os.pipe()
    to_child_r, to_child_w = os.pipe()
    env = sandbox_environment(limits.threads, {PROTOCOL_ENV: f"{to_child_r},{to_parent_w}"})
    argv = [sys.executable, "-I", "-m", module, str(folder)]
    cmd = bubblewrap_command(folder, env, argv, [Path(p).resolve() for p in read_only]) if problem is None else argv
    os.set_blocking(to_child_w, False)  # a sandbox that never reads replies must not block us
    cgroup = PidsCgroup(limits.max_pids)
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            launcher_command(limits, cgroup, cmd), cwd=folder, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(to_child_r, to_parent_w), start_new_session=True,
        )
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        cgroup.remove()
        for fd in (to_parent_r, to_child_w):
            os.close(fd)
        raise SandboxError(f"could not start the sandbox: {exc}") from exc
    finally:
        os.close(to_child_r)
        os.close(to_parent_w)
    try:
        return _supervise(process, to_parent_r, to_child_w, limits, on_message, started, describe_isolation(problem is None, cgroup))
    finally:
        if process.returncode is None:
            _kill_group(process)
        for fd in (to_parent_r, to_child_w):
            try:
                os.close(fd)
            except OSError:
                pass
        cgroup.remove()


def _supervise(process, proto_r, proto_w, limits, on_message, started, isolation) -> SandboxRun:
    deadline = started + limits.timeout_s
    out, err = _Tail(limits.output_tail_bytes), _Tail(limits.output_tail_bytes)
    buffer = bytearray()
    protocol_error: str | None = None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ, out)
    selector.register(process.stderr, selectors.EVENT_READ, err)
    selector.register(proto_r, selectors.EVENT_READ, "proto")
    timed_out = False
    exited_at: float | None = None
    while selector.get_map():
        now = time.monotonic()
        if now >= deadline:
            timed_out = True
            break
        if exited_at is None and process.poll() is not None:
            exited_at = now
        if exited_at is not None and now - exited_at > 5:
            break  # leftover children keep pipes open; the group is killed below
        for key, _ in selector.select(timeout=min(1.0, deadline - now)):
            fd = key.fd if key.data == "proto" else key.fileobj.fileno()
            chunk = os.read(fd, 65536)
            if not chunk:
                selector.unregister(key.fileobj)
                continue
            if key.data != "proto":
                key.data.add(chunk)
                continue
            buffer += chunk
            while b"\n" in buffer and protocol_error is None:
                line, _, rest = buffer.partition(b"\n")
                buffer = bytearray(rest)
                protocol_error = _answer(line, on_message, proto_w)
            if len(buffer) > MAX_MESSAGE_BYTES and protocol_error is None:
                protocol_error = f"protocol message over {MAX_MESSAGE_BYTES} bytes"
            if protocol_error:
                _kill_group(process)
    selector.close()
    _kill_group(process)
    try:
        returncode = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        returncode = None
    process.stdout.close()
    process.stderr.close()
    return SandboxRun(
        returncode=returncode, timed_out=timed_out, wall_s=round(time.monotonic() - started, 3),
        stdout_tail=out.text(), stderr_tail=err.text(), stdout_bytes=out.total, stderr_bytes=err.total,
        isolation=isolation, protocol_error=protocol_error,
    )


def _answer(line: bytes, on_message, proto_w: int) -> str | None:
    """Handle one protocol line; return an error text if it is not a valid message."""
    try:
        message = json.loads(line)
        if not isinstance(message, dict):
            raise ValueError("not an object")
        reply = on_message(message) if on_message else {}
    except Exception as exc:  # noqa: BLE001 - anything the sandbox sends must not crash the orchestrator
        return f"invalid protocol message: {type(exc).__name__}: {str(exc)[:200]}"
    try:
        os.write(proto_w, (json.dumps(reply or {}) + "\n").encode())
    except BlockingIOError:
        return "the sandbox does not read its protocol replies"
    except OSError:
        pass  # the sandbox is gone; its exit status tells the rest
    return None


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
