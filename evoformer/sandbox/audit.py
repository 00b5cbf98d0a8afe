"""An in-process second layer for the sandbox: a CPython audit hook that cannot be removed.

It denies writes outside the candidate's folder, sockets, new processes and ctypes. The OS layer
(bubblewrap) must hold without it; this catches the same things earlier and with a clear error.
"""

from __future__ import annotations

import os
import sys

_BLOCKED_EVENTS = frozenset(
    {
        "socket.connect",
        "socket.bind",
        "socket.sendto",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "urllib.Request",
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.forkpty",
        "pty.spawn",
        "ctypes.dlopen",
        "ctypes.dlsym",
        "ctypes.call_function",
        "os.kill",
        "os.killpg",
        "webbrowser.open",
    }
)
_PATH_EVENTS = frozenset(
    {
        "os.remove",
        "os.rename",
        "os.rmdir",
        "os.mkdir",
        "os.chmod",
        "os.chown",
        "os.truncate",
        "os.symlink",
        "os.link",
        "os.utime",
        "shutil.rmtree",
        "shutil.move",
        "shutil.copyfile",
    }
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def install(folder: str) -> None:
    """Install the hook for the rest of the process's life.

    Everything the hook uses is bound here, as closure variables, so that code running later
    cannot switch it off by replacing module globals.
    """
    root = os.path.realpath(folder)
    realpath, fsdecode, sep = os.path.realpath, os.fsdecode, os.sep
    blocked, path_events, write_flags = _BLOCKED_EVENTS, _PATH_EVENTS, _WRITE_FLAGS
    path_types = (str, bytes, os.PathLike)

    def inside(path: object) -> bool:
        if isinstance(path, int):
            return True  # an already-open descriptor
        if not isinstance(path, path_types):
            return False  # what fsdecode would refuse with a TypeError
        try:
            real = realpath(fsdecode(path))
        except (TypeError, ValueError):
            return False
        return real == root or real.startswith(root + sep)

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & write_flags
            )
            if writing and path is not None and not inside(path):
                raise PermissionError(f"sandbox: writing {path!r} outside the candidate folder is not allowed")
        elif event in blocked:
            raise PermissionError(f"sandbox: {event} is not allowed")
        elif event in path_events:
            if not all(inside(a) for a in args[:2] if isinstance(a, path_types)):
                raise PermissionError(f"sandbox: {event} outside the candidate folder is not allowed")

    sys.addaudithook(hook)
