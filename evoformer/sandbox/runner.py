"""Start a sandboxed Python process, talk to it over a private pipe, keep only output tails."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from evoformer.sandbox.disk import CHECK_INTERVAL_S, FolderWatch, PrivateRoot, PrivateRootError, private_root_problem
from evoformer.sandbox.isolation import (
    PidsCgroup,
    bubblewrap_command,
    bubblewrap_problem,
    describe_isolation,
    launcher_command,
    log,
)
from evoformer.sandbox.limits import SandboxLimits, sandbox_environment
from evoformer.sandbox.protocol import PROTOCOL_ENV

MAX_MESSAGE_BYTES = 4_000_000
__all__ = ["PROTOCOL_ENV", "SandboxError", "SandboxRun", "run_sandboxed"]


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
    disk_guard: str = Field(default="", description="What held the disk quota: 'tmpfs' (the kernel) or 'watchdog'.")
    disk_quota: str | None = Field(default=None, description="Why the run was stopped for its disk quota, if it was.")
    disk_bytes: int = Field(default=0, description="Bytes written, as last measured.")
    disk_files: int = Field(default=0, description="Files and folders created, as last measured.")


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
    read_only: Sequence[Path] = (),
    outputs: list[str] | None = None,
) -> SandboxRun:
    """Run ``python -m module folder`` in the sandbox. ``on_message`` answers each protocol message;
    ``read_only`` paths (such as the features) stay readable even under the private /tmp.

    What is in ``folder`` before the run is its input. Afterwards the folder holds the inputs and
    what the run wrote there that matches ``outputs`` (glob patterns of paths relative to the
    folder, such as ``result.json`` or ``variants/*``; None: everything), or, when the run was
    stopped for its disk quota (``max_disk_mb``, ``max_files``), the inputs only."""
    folder = Path(folder).resolve()
    problem = bubblewrap_problem()
    if problem and limits.require_isolation:
        raise SandboxError(f"OS isolation required but unavailable: {problem}")
    if problem:
        log.warning(
            "SANDBOX IS WEAKER THAN IT SHOULD BE: %s. Untrusted code runs with rlimits and an audit hook only.", problem
        )
    disk = _disk_guard(folder, limits, problem is None)

    to_parent_r, to_parent_w = os.pipe()
    to_child_r, to_child_w = os.pipe()
    env = sandbox_environment(limits.threads, {PROTOCOL_ENV: f"{to_child_r},{to_parent_w}", **disk.env})
    argv = [sys.executable, "-I", "-m", module, str(folder)]
    read_only = [Path(p).resolve() for p in read_only]
    if isinstance(disk, PrivateRoot):
        cmd = disk.command(env, argv, read_only)
    elif problem is None:
        cmd = bubblewrap_command(folder, env, argv, read_only, root_bytes=limits.max_disk_mb * 1024 * 1024)
    else:
        cmd = argv
    os.set_blocking(to_child_w, False)  # a sandbox that never reads replies must not block us
    cgroup = PidsCgroup(limits.max_pids)
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            launcher_command(limits, cgroup, cmd),
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(to_child_r, to_parent_w, *disk.child_fds),
            start_new_session=True,
        )
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        cgroup.remove()
        disk.finish(keep=False, outputs=None)
        for fd in (to_parent_r, to_child_w):
            os.close(fd)
        raise SandboxError(f"could not start the sandbox: {exc}") from exc
    finally:
        os.close(to_child_r)
        os.close(to_parent_w)
    run = None
    try:
        if isinstance(disk, PrivateRoot):
            disk.started(started + min(limits.timeout_s, 120))
        else:
            disk.pid = process.pid if problem else None  # without bubblewrap the launcher execs the worker itself
        isolation = describe_isolation(problem is None, cgroup, disk.mechanism)
        run = _supervise(process, to_parent_r, to_child_w, limits, on_message, started, isolation, disk)
        return run
    except PrivateRootError as exc:
        raise SandboxError(f"could not set up the sandbox's disk quota: {exc}") from exc
    finally:
        if process.returncode is None:
            _kill_group(process)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        for fd in (to_parent_r, to_child_w):
            try:
                os.close(fd)
            except OSError:
                pass
        cgroup.remove()
        disk.finish(keep=run is not None and run.disk_quota is None, outputs=outputs)


def _disk_guard(folder: Path, limits: SandboxLimits, use_bwrap: bool) -> PrivateRoot | FolderWatch:
    """The ``tmpfs`` mechanism of the disk quota where it works, else the ``watchdog``."""
    if use_bwrap:
        problem = private_root_problem()
        if problem is None:
            return PrivateRoot(folder, limits)
        log.warning(
            "disk quota: %s; the folder is watched instead (a fast writer can pass the cap between two looks)", problem
        )
    return FolderWatch(folder, limits, private_tmp=not use_bwrap)


def _supervise(process, proto_r, proto_w, limits, on_message, started, isolation, disk) -> SandboxRun:
    deadline = started + limits.timeout_s
    next_disk_check = time.monotonic()
    disk_quota: str | None = None
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
        if disk_quota is None and now >= next_disk_check:
            next_disk_check = now + CHECK_INTERVAL_S
            disk_quota = disk.check()
            if disk_quota:
                _kill_group(process)
        for key, _ in selector.select(timeout=min(CHECK_INTERVAL_S, deadline - now)):
            fd = key.fd  # the registered descriptor, for the protocol pipe and the output pipes alike
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
                protocol_error = _answer(bytes(line), on_message, proto_w)
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
    disk_quota = disk_quota or disk.check()  # what a run that ended by itself left counts too
    return SandboxRun(
        returncode=returncode,
        timed_out=timed_out,
        wall_s=round(time.monotonic() - started, 3),
        stdout_tail=out.text(),
        stderr_tail=err.text(),
        stdout_bytes=out.total,
        stderr_bytes=err.total,
        isolation=isolation,
        protocol_error=protocol_error,
        disk_guard=disk.mechanism,
        disk_quota=disk_quota,
        disk_bytes=disk.last.bytes,
        disk_files=disk.last.files,
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
