"""The disk quota of one sandboxed process: how many bytes and files it may write, and what holds it.

``tmpfs`` (bubblewrap, the normal case): the sandbox's whole writable view, its folder, /tmp and
the rest of its private root, is ONE tmpfs of ``max_disk_mb`` (plus 1 MiB, so that reaching the
cap and passing it can be told apart). The kernel refuses every write past it (ENOSPC), wherever
the sandbox makes it, from Python or from native code, into files deleted while open too. The
supervisor holds a descriptor on that tmpfs, opened through ``/proc/PID/root`` before anything
runs there (``gate.py``), and reads its usage with ``fstatvfs``, bytes and inodes, every 0.25 s
and once more at the end; over either cap it kills the process group. (bubblewrap cannot set a
tmpfs inode limit, so the file cap is this count.) The real folder is never writable from
inside: its files are bound read-only, and after the run only the outputs the caller names are
copied out of the tmpfs, never through a symlink. The tmpfs is gone once the descriptor closes.

``watchdog`` (no bubblewrap, or a private root that cannot be reached from here): the folder is
the real one, and the supervisor walks it every 0.25 s (without bubblewrap also counting files
the process deleted but holds open) and kills the process group over a cap. Between two looks a
fast writer gets past the cap by what it writes in 0.25 s (each file is at most ``max_file_mb``,
RLIMIT_FSIZE). With bubblewrap, /tmp and the rest of the private root are a tmpfs of
``max_disk_mb`` on their own; without it, native code can write wherever the user can, and only
the folder (and ``$TMPDIR``, which points into it) is measured.

Either way, a run over its quota leaves nothing of what it wrote in the folder.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import select
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from evoformer.sandbox.isolation import bubblewrap_command, bubblewrap_problem, log
from evoformer.sandbox.limits import SandboxLimits, sandbox_environment

MIB = 1024 * 1024
SLACK_BYTES = MIB
CHECK_INTERVAL_S = 0.25
MAX_COPY_DEPTH = 16
SANDBOX_TMP = ".sandbox-tmp"
GATE = Path(__file__).resolve().with_name("gate.py")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PrivateRootError(RuntimeError):
    """The sandbox's private root could not be reached (the runner reports a SandboxError)."""


class Usage(NamedTuple):
    bytes: int
    files: int


def quota_reason(usage: Usage, limits: SandboxLimits, bytes_held_by: str, files_held_by: str) -> str | None:
    """Why ``usage`` is over the quota of ``limits``, or None. The text names the disk quota."""
    if usage.bytes > limits.max_disk_mb * MIB:
        return (
            f"disk quota exceeded: {usage.bytes / MIB:.1f} MiB written, the cap is {limits.max_disk_mb} MiB "
            f"({bytes_held_by}); process group killed"
        )
    if usage.files > limits.max_files:
        return (
            f"disk quota exceeded: more than {limits.max_files} files and folders created "
            f"({usage.files} counted; {files_held_by}); process group killed"
        )
    return None


def entries(folder: Path) -> set[str]:
    """Names of the regular files and folders in ``folder``: the inputs of a run."""
    names = set()
    for entry in os.scandir(folder):
        if entry.is_file(follow_symlinks=False) or entry.is_dir(follow_symlinks=False):
            names.add(entry.name)
    return names


def wanted(relative: str, outputs: Iterable[str] | None) -> bool:
    return outputs is None or any(fnmatch.fnmatchcase(relative, pattern) for pattern in outputs)


class PrivateRoot:
    """The ``tmpfs`` mechanism (see the module doc)."""

    mechanism = "tmpfs"

    def __init__(self, folder: Path, limits: SandboxLimits) -> None:
        self.folder, self.limits = folder, limits
        self.inputs = entries(folder)
        self.root_bytes = limits.max_disk_mb * MIB + SLACK_BYTES
        self.info_r, self.info_w = os.pipe()
        self.ready_r, self.ready_w = os.pipe()
        self.go_r, self.go_w = os.pipe()
        self._open = {self.info_r, self.info_w, self.ready_r, self.ready_w, self.go_r, self.go_w}
        self.root_fd: int | None = None
        self.base = Usage(0, 0)
        self.last = Usage(0, 0)
        self.env: dict[str, str] = {}

    @property
    def child_fds(self) -> tuple[int, ...]:
        """The descriptors the sandbox process inherits (closed here once it has started)."""
        return self.info_w, self.ready_w, self.go_r

    def command(self, env: dict[str, str], argv: list[str], read_only: list[Path]) -> list[str]:
        gate = [sys.executable, "-I", "-S", str(GATE), str(self.ready_w), str(self.go_r), "--", *argv]
        return bubblewrap_command(
            self.folder,
            env,
            gate,
            read_only,
            root_bytes=self.root_bytes,
            inputs=[self.folder / name for name in sorted(self.inputs)],
            info_fd=self.info_w,
        )

    def started(self, deadline: float) -> None:
        """Once the sandbox process runs: open its root, take the baseline usage, let it go on."""
        self._close(*self.child_fds)
        info = _read_all(self.info_r, deadline)
        try:
            pid = int(json.loads(info)["child-pid"])
        except (ValueError, KeyError, TypeError) as exc:
            raise PrivateRootError(f"bubblewrap did not report its child ({info[:200]!r})") from exc
        if _read_all(self.ready_r, deadline, limit=1) != b"r":
            raise PrivateRootError("the sandbox stopped before it was ready")
        try:
            self.root_fd = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            vfs = os.fstatvfs(self.root_fd)
        except OSError as exc:
            raise PrivateRootError(f"cannot open the sandbox's root through /proc/{pid}/root: {exc}") from exc
        size = vfs.f_blocks * vfs.f_frsize
        if not self.root_bytes <= size < self.root_bytes + 64 * 1024:
            raise PrivateRootError(
                f"the sandbox's root is not the {self.root_bytes}-byte tmpfs asked for ({size} bytes)"
            )
        self.base = _tmpfs_usage(vfs)
        os.write(self.go_w, b"g")
        self._close(self.go_w)

    def usage(self) -> Usage:
        if self.root_fd is None:
            return Usage(0, 0)
        used = _tmpfs_usage(os.fstatvfs(self.root_fd))
        return Usage(max(0, used.bytes - self.base.bytes), max(0, used.files - self.base.files))

    def check(self) -> str | None:
        self.last = self.usage()
        return quota_reason(
            self.last,
            self.limits,
            "a size-limited tmpfs refused writes past it",
            f"inode count of that tmpfs, checked every {CHECK_INTERVAL_S} s",
        )

    def finish(self, keep: bool, outputs: Iterable[str] | None) -> None:
        """After the sandbox is gone: copy its outputs out (when ``keep``), then drop the tmpfs."""
        try:
            if keep and self.root_fd is not None:
                copy_out(self.root_fd, self.folder, self.inputs, outputs, self.limits)
        finally:
            self.close()

    def close(self) -> None:
        self._close(*self._open)
        if self.root_fd is not None:
            os.close(self.root_fd)
            self.root_fd = None

    def _close(self, *fds: int) -> None:
        for fd in fds:
            if fd in self._open:
                self._open.discard(fd)
                os.close(fd)


class FolderWatch:
    """The ``watchdog`` mechanism (see the module doc)."""

    mechanism = "watchdog"
    child_fds: tuple[int, ...] = ()

    def __init__(self, folder: Path, limits: SandboxLimits, private_tmp: bool) -> None:
        self.folder, self.limits = folder, limits
        self.inputs = entries(folder)
        self.known = _identities(folder)
        self.pid: int | None = None
        self.last = Usage(0, 0)
        self.env: dict[str, str] = {}
        if private_tmp:  # temporary files go into the folder, where they are measured
            tmp = folder / SANDBOX_TMP
            tmp.mkdir(exist_ok=True)
            self.known[_identity(tmp)] = 0
            self.env = {"TMPDIR": str(tmp)}

    def usage(self) -> Usage:
        total, files = 0, 0
        stack = [str(self.folder)]
        while stack:
            try:
                scan = os.scandir(stack.pop())
            except OSError:
                continue
            with scan:
                for entry in scan:
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISDIR(info.st_mode):
                        stack.append(entry.path)
                    written = info.st_blocks * 512
                    before = self.known.get((info.st_dev, info.st_ino))
                    if before is not None:  # an input (or an inode number it left): only its growth counts
                        total += max(0, written - before)
                        continue
                    files += 1
                    total += written
                    if files > self.limits.max_files:
                        return Usage(total, files)
        return Usage(total + self._deleted_open_bytes(), files)

    def _deleted_open_bytes(self) -> int:
        """Files the process deleted but still holds open (they use disk but are in no folder)."""
        if self.pid is None:
            return 0
        total = 0
        try:
            fds = os.listdir(f"/proc/{self.pid}/fd")
        except OSError:
            return 0
        for fd in fds:
            path = f"/proc/{self.pid}/fd/{fd}"
            try:
                if os.readlink(path).endswith(" (deleted)"):
                    info = os.stat(path)
                    total += info.st_blocks * 512 if stat.S_ISREG(info.st_mode) else 0
            except OSError:
                continue
        return total

    def check(self) -> str | None:
        self.last = self.usage()
        held_by = f"disk watchdog, checked every {CHECK_INTERVAL_S} s"
        return quota_reason(self.last, self.limits, held_by, held_by)

    def finish(self, keep: bool, outputs: Iterable[str] | None) -> None:
        """Remove what the run wrote: everything when not ``keep``, else what is not an output."""
        prune(self.folder, self.inputs, outputs if keep else (), drop=[SANDBOX_TMP])

    def close(self) -> None:
        pass


def copy_out(root_fd: int, folder: Path, inputs: set[str], outputs: Iterable[str] | None, limits: SandboxLimits) -> int:
    """Copy the files the sandbox wrote in its folder on the tmpfs into the real ``folder``:
    regular files that match ``outputs`` (None: all), never through a symlink, never over an
    input, at most the quota in bytes and files and ``MAX_COPY_DEPTH`` folders deep. Returns the
    number of files copied."""
    outputs = None if outputs is None else tuple(outputs)
    budget = [limits.max_disk_mb * MIB + SLACK_BYTES, limits.max_files]
    fd = os.dup(root_fd)
    try:
        for part in folder.parts[1:]:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        _copy_tree(fd, folder, "", inputs, outputs, budget, 0)
    except OSError as exc:
        log.warning("copying the sandbox's outputs out of %s stopped: %s", folder, exc)
    finally:
        os.close(fd)
    return limits.max_files - budget[1]


def _copy_tree(src: int, dst: Path, relative: str, inputs, outputs, budget: list[int], depth: int) -> None:
    with os.scandir(src) as scan:
        names = [entry.name for entry in scan]
    for name in sorted(names):
        path = f"{relative}/{name}" if relative else name
        if not relative and name in inputs:
            continue
        info = os.stat(name, dir_fd=src, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode) and depth < MAX_COPY_DEPTH:
            child = os.open(name, _DIR_FLAGS, dir_fd=src)
            try:
                _copy_tree(child, dst, path, inputs, outputs, budget, depth + 1)
            finally:
                os.close(child)
        elif stat.S_ISREG(info.st_mode) and wanted(path, outputs) and budget[1] > 0:
            _copy_file(src, name, dst / path, budget)


def _copy_file(src_dir: int, name: str, target: Path, budget: list[int]) -> None:
    src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=src_dir)
    try:
        if not stat.S_ISREG(os.fstat(src).st_mode):
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        budget[1] -= 1
        try:
            while budget[0] > 0 and (chunk := os.read(src, min(MIB, budget[0]))):
                os.write(dst, chunk)
                budget[0] -= len(chunk)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def prune(folder: Path, inputs: set[str], outputs: Iterable[str] | None, drop: Iterable[str] = ()) -> None:
    """Delete what a run wrote into ``folder``: everything but the ``inputs`` (top-level names)
    and the regular files matching ``outputs`` (None: all). ``drop`` names are deleted whatever
    they hold. Symlinks are deleted, never followed."""
    outputs = None if outputs is None else tuple(outputs)
    drop = set(drop)
    stack: list[tuple[str, str, bool]] = [(str(folder), "", False)]
    dirs: list[str] = []
    while stack:
        path, relative, dropped = stack.pop()
        try:
            scan = os.scandir(path)
        except OSError:
            continue
        with scan:
            for entry in scan:
                rel = f"{relative}/{entry.name}" if relative else entry.name
                gone = dropped or (not relative and entry.name in drop)
                if not relative and entry.name in inputs and not gone:
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((entry.path, rel, gone))
                        dirs.append(entry.path)
                    elif gone or not entry.is_file(follow_symlinks=False) or not wanted(rel, outputs):
                        os.unlink(entry.path)  # outputs are regular files: links and the rest go
                except OSError as exc:
                    log.warning("could not remove %s: %s", entry.path, exc)
    for path in reversed(dirs):
        try:
            os.rmdir(path)  # only the empty ones go
        except OSError:
            pass


def _identity(path: Path) -> tuple[int, int]:
    info = os.lstat(path)
    return info.st_dev, info.st_ino


def _identities(folder: Path) -> dict[tuple[int, int], int]:
    """(device, inode) -> bytes on disk of everything in ``folder`` before the run."""
    known = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            try:
                info = os.lstat(Path(root) / name)
            except OSError:
                continue
            known[info.st_dev, info.st_ino] = info.st_blocks * 512
    return known


def _tmpfs_usage(vfs: os.statvfs_result) -> Usage:
    return Usage((vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize, vfs.f_files - vfs.f_ffree)


def _read_all(fd: int, deadline: float, limit: int = 1 << 16) -> bytes:
    """Read ``fd`` until EOF or ``limit`` bytes, waiting at most until ``deadline``."""
    data = b""
    while len(data) < limit:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise PrivateRootError("the sandbox did not start in time")
        chunk = os.read(fd, limit - len(data))
        if not chunk:
            break
        data += chunk
    return data


@functools.lru_cache(maxsize=1)
def private_root_problem() -> str | None:
    """None when the ``tmpfs`` mechanism works here (bubblewrap, a size-limited tmpfs as root, and
    its usage and files readable from outside), else why not."""
    problem = bubblewrap_problem()
    if problem:
        return problem
    with tempfile.TemporaryDirectory(prefix="evoformer-probe-") as tmp:
        folder = Path(tmp).resolve() / "probe"
        folder.mkdir()
        (folder / "input.txt").write_text("in")
        limits = SandboxLimits(max_disk_mb=1, max_files=8)
        root = PrivateRoot(folder, limits)
        code = "print(open('input.txt').read()); open('out.txt', 'w').write('out')"
        argv = [sys.executable, "-I", "-S", "-c", code]
        try:
            process = subprocess.Popen(
                root.command(sandbox_environment(1), argv, []),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=root.child_fds,
                start_new_session=True,
            )
        except OSError as exc:
            root.close()
            return f"bubblewrap failed to start: {exc}"
        try:
            root.started(time.monotonic() + 30)
            out, err = process.communicate(timeout=30)
            usage = root.usage()
            root.finish(keep=True, outputs=None)
        except (PrivateRootError, OSError, subprocess.TimeoutExpired) as exc:
            process.kill()
            process.wait()
            root.close()
            return f"the sandbox's private root cannot be used for the disk quota: {exc}"
        copied = (folder / "out.txt").is_file() and (folder / "out.txt").read_text() == "out"
        if process.returncode != 0 or out.strip() != b"in" or not copied or usage.files < 1:
            return f"the sandbox's private root does not work as expected (exit {process.returncode}: {err[-300:]!r})"
    return None
