"""Resource limits of the sandbox and the scrubbed environment it runs with."""

from __future__ import annotations

import fnmatch
import os

from pydantic import BaseModel, ConfigDict, Field

from evoformer.fields import form_schema

SECRET_PATTERNS = ("*_KEY", "*_TOKEN", "*_SECRET", "*PASSWORD*", "OPENAI_*", "*CREDENTIAL*", "*_AUTH*")
PASSED_VARIABLES = ("PATH", "LANG", "LC_ALL", "TZ")


class SandboxLimits(BaseModel):
    """Hard limits on one sandboxed process."""

    # threads next to the timeout in the form; the field order stays, as training_key hashes model_dump_json.
    model_config = ConfigDict(json_schema_extra=form_schema("timeout_s", "threads", "memory_mb"))

    timeout_s: float = Field(
        default=900.0,
        gt=0,
        title="Sandbox timeout (s)",
        description="Wall clock; the whole process group is killed after it.",
    )
    memory_mb: int = Field(default=6144, ge=256, title="Memory cap (MB)", description="Address-space cap (RLIMIT_AS).")
    max_pids: int = Field(
        default=64, ge=4, title="Max processes", description="Processes and threads (pids cgroup, else RLIMIT_NPROC)."
    )
    threads: int = Field(
        default=2, ge=1, title="Threads per sandbox", description="Torch / BLAS threads inside the sandbox."
    )
    max_file_mb: int = Field(
        default=1024, ge=1, title="Largest file (MB)", description="Largest file the sandbox may write (RLIMIT_FSIZE)."
    )
    max_disk_mb: int = Field(
        default=2048,
        ge=1,
        title="Disk quota (MiB)",
        description="Disk quota: total MiB the sandbox may write, in its folder, /tmp and anywhere else (see "
        "docs/sandbox.md). 2048 leaves room for one weights file at the per-file cap (max_file_mb) and as much "
        "again for the result, scratch files and compressed variants; the largest seed's weights are about 8 MB "
        "(fp32), so programs many times bigger still fit. With bubblewrap it is a tmpfs, i.e. memory (or swap) "
        "while the sandbox runs, and only for what the sandbox really writes.",
    )
    max_files: int = Field(
        default=2000,
        ge=1,
        title="Files quota",
        description="Disk quota: files and folders the sandbox may create. A training run writes 2, a compression "
        "run a few dozen (variants, ONNX exports); 2000 is far above both and far below what fills a file system.",
    )
    output_tail_bytes: int = Field(
        default=16_384, ge=1024, title="Output tail (bytes)", description="How much of stdout/stderr is kept."
    )
    max_result_bytes: int = Field(
        default=8_000_000, ge=1024, title="Largest result (bytes)", description="Largest result.json accepted."
    )
    require_isolation: bool = Field(
        default=False, description="Fail instead of falling back when bubblewrap is unusable."
    )
    audit_hook: bool = Field(default=True, description="In-process second layer: deny writes, sockets and processes.")


def is_secret(name: str) -> bool:
    upper = name.upper()
    return any(fnmatch.fnmatchcase(upper, pattern) for pattern in SECRET_PATTERNS)


def sandbox_environment(threads: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A minimal environment: a few harmless variables, thread settings, never a secret."""
    env = {name: os.environ[name] for name in PASSED_VARIABLES if name in os.environ and not is_secret(name)}
    env.setdefault("PATH", "/usr/bin:/bin")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    env.update({"PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "HF_HUB_OFFLINE": "1", "HOME": "/nonexistent"})
    for name, value in (extra or {}).items():
        if not is_secret(name):
            env[name] = value
    return env
