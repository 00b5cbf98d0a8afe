"""OS-level isolation: bubblewrap namespaces, a pids cgroup, and rlimits.

With bubblewrap the sandbox sees only system libraries, Python, the evoformer package and the
features (all read-only) plus its own folder (writable), has no network (empty network
namespace), its own PID namespace (nothing survives it), no capabilities and a scrubbed
environment. Its root is a size-limited tmpfs (the disk quota, ``disk.py``), and /dev is
read-only. Without bubblewrap it falls back to rlimits, a new session and the in-process audit
hook, and says so loudly.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from evoformer.sandbox.limits import SandboxLimits

log = logging.getLogger("evoformer.sandbox")
PIDS_CGROUP_V1 = Path("/sys/fs/cgroup/pids")


@functools.lru_cache(maxsize=1)
def bubblewrap_problem() -> str | None:
    """None when bubblewrap works here, else why not."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bubblewrap (bwrap) is not installed; `apt-get install bubblewrap` (make setup does this as root)"
    probe = [exe, *_namespace_flags(), "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap failed to start: {exc}"
    if done.returncode != 0:
        return f"bubblewrap cannot create namespaces here: {done.stderr.strip()[:300]}"
    return None


def _namespace_flags() -> list[str]:
    return [
        "--unshare-all",
        "--unshare-user",
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--cap-drop",
        "ALL",
        "--die-with-parent",
        "--new-session",
    ]


# What the sandbox can see, read-only: the system's programs and libraries, the Python
# installation and the evoformer package. Nothing else: not the run folders (test labels), not the
# data files, not other sandboxes' folders, not /etc beyond what the dynamic loader needs.
_SYSTEM_PATHS = (
    "/usr",
    "/bin",
    "/lib",
    "/lib64",
    "/sbin",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/sys/devices/system/cpu",
)


def visible_paths() -> list[Path]:
    """Read-only paths the worker needs: system libraries, Python (base and venv), evoformer."""
    import evoformer

    paths = [Path(p) for p in _SYSTEM_PATHS]
    paths += [Path(sys.base_prefix), Path(sys.prefix), Path(evoformer.__file__).resolve().parent]
    return paths


def bubblewrap_command(
    folder: Path,
    env: dict[str, str],
    argv: list[str],
    read_only: Sequence[Path] = (),
    *,
    root_bytes: int,
    inputs: list[Path] | None = None,
    info_fd: int | None = None,
) -> list[str]:
    """``argv`` wrapped in bubblewrap: only system libraries, Python, evoformer and ``read_only``
    paths visible (read-only), the writable ``folder``, and no network.

    The root, and so /tmp and every other writable place but /dev (read-only), is ONE tmpfs of
    ``root_bytes``. With ``inputs`` (paths in ``folder``) the folder is private too: a directory on
    that tmpfs where only the inputs are bound, read-only, from the real folder; without, the real
    folder is bound read-write. ``info_fd`` receives bubblewrap's JSON with the child's pid."""
    cmd = [
        shutil.which("bwrap") or "bwrap",
        *_namespace_flags(),
        "--size",
        str(root_bytes),
        "--tmpfs",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--dir",
        "/tmp",
    ]
    for path in [*visible_paths(), *read_only]:
        cmd += ["--ro-bind-try", str(path), str(path)]
    if inputs is None:
        cmd += ["--bind", str(folder), str(folder)]
    else:
        cmd += ["--dir", str(folder)]
        for path in inputs:
            cmd += ["--ro-bind", str(path), str(path)]
    cmd += ["--remount-ro", "/dev", "--chdir", str(folder), "--clearenv"]
    if info_fd is not None:
        cmd += ["--info-fd", str(info_fd)]
    for name, value in env.items():
        cmd += ["--setenv", name, value]
    return cmd + ["--", *argv]


class PidsCgroup:
    """A throw-away pids cgroup (v1) capping processes and threads; unavailable -> None path."""

    def __init__(self, max_pids: int) -> None:
        self.path: Path | None = None
        if not os.access(PIDS_CGROUP_V1, os.W_OK):
            return
        path = PIDS_CGROUP_V1 / "evoformer" / uuid.uuid4().hex[:12]
        try:
            path.mkdir(parents=True)
            (path / "pids.max").write_text(str(max_pids))
            self.path = path
        except OSError as exc:
            log.debug("pids cgroup unavailable: %s", exc)

    def remove(self) -> None:
        """Kill whatever is still in the cgroup, then remove it."""
        if self.path is None:
            return
        for _ in range(50):
            try:
                pids = [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
            except OSError:
                return
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)
        log.warning("could not remove cgroup %s", self.path)


def launcher_command(limits: SandboxLimits, cgroup: PidsCgroup, command: list[str]) -> list[str]:
    """``command`` behind the exec wrapper that joins the cgroup and sets rlimits (no preexec_fn)."""
    wrapper = [
        sys.executable,
        "-I",
        "-m",
        "evoformer.sandbox.launch",
        "--memory-bytes",
        str(limits.memory_mb * 1024 * 1024),
        "--file-bytes",
        str(limits.max_file_mb * 1024 * 1024),
    ]
    if cgroup.path:
        wrapper += ["--cgroup-procs", str(cgroup.path / "cgroup.procs")]
    elif os.geteuid() != 0:
        wrapper += ["--nproc", str(limits.max_pids)]
    return [*wrapper, "--", *command]


def describe_isolation(use_bwrap: bool, cgroup: PidsCgroup, disk: str = "") -> str:
    layers = ["bubblewrap(minimal-ro-view, own-folder-rw, no-net, pid-ns, no-caps)" if use_bwrap else "NO-NAMESPACES"]
    layers.append("pids-cgroup" if cgroup.path else ("rlimit-nproc" if os.geteuid() != 0 else "NO-PROCESS-CAP"))
    layers.append("rlimit-as")
    if disk:
        layers.append(f"disk-quota({disk})")
    return "+".join(layers)
