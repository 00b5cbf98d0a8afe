"""Start evolve and compress runs from the GUI, locally (a child ``evoformer`` process) or through
the Prefect deployments, and tell how they are doing.

The LLM API key is an argument of the start functions only; it is never part of a settings model.
- Local runs: the key goes into the child's environment under :data:`KEY_ENV`, and the CLI gets
  only that variable's *name* (``--llm-api-key-env``). Nothing is written to disk.
- Deployment runs: the key is saved as a Prefect Secret block (it lives in the server's database),
  and the flow parameters carry only the block's *name* (``LLMConfig.api_key_secret``); the flow
  resolves it in memory (``flows/secrets.py``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from evoformer.compression.config import CompressConfig
from evoformer.runs import StorageConfig, new_run_id
from ui.runs import LAUNCH_FILE, UI_DIR, read_json

KEY_ENV = "EVOFORMER_UI_LLM_API_KEY"
DEFAULT_SECRET_BLOCK = "evoformer-llm-key"
EVOLVE_DEPLOYMENT = "evolve/evolve-nightly"
COMPRESS_DEPLOYMENT = "compress/compress"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.py$")


class LLMSettings(BaseModel):
    """Endpoint and model; the key is deliberately not a field."""

    base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint; empty: $OPENAI_BASE_URL, else api.openai.com.")
    model: str = "gpt-4o-mini"
    secret_block: str = Field(default=DEFAULT_SECRET_BLOCK, description="Prefect Secret block name for deployment runs.")

    @field_validator("base_url")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value else None


class EvolveSettings(BaseModel):
    """What the GUI form sets for one evolve run (a subset of ``EvolveParams``, plus where it runs)."""

    run_id: str = Field(default_factory=new_run_id)
    runs_dir: str = Field(default_factory=lambda: StorageConfig().runs_dir)
    cache_dir: str = Field(default_factory=lambda: StorageConfig().cache_dir)
    source: str | None = Field(default=None, description="Data file; empty: $EVOFORMER_DATA, the shared file, then the hub.")
    operator: Literal["offline", "llm", "auto"] = "offline"
    llm: LLMSettings = Field(default_factory=LLMSettings)
    generations: int = Field(default=2, ge=0)
    children: int = Field(default=4, ge=1)
    seed: int = 0
    time_budget_s: float = Field(default=30.0, gt=0, description="Seconds of training per candidate.")
    max_epochs: int = Field(default=12, ge=1)
    max_train_pairs: int | None = Field(default=None, ge=1)
    latency_repeats: int = Field(default=20, ge=1)
    max_parallel: int = Field(default=1, ge=1)
    timeout_s: float = Field(default=900.0, gt=0, description="Hard wall-clock limit of one sandbox.")
    seed_folder: str | None = Field(default=None, description="Folder of seed programs; empty: the built-in library.")
    prelude_path: str | None = None

    @field_validator("source", "seed_folder", "prelude_path")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value else None


class CompressSettings(BaseModel):
    """What the GUI form sets for one compress run."""

    run_id: str
    runs_dir: str = Field(default_factory=lambda: StorageConfig().runs_dir)
    candidates: list[str] = Field(min_length=1)
    sparsities: list[float] = Field(default_factory=lambda: CompressConfig().sparsities)
    structured_ratios: list[float] = Field(default_factory=lambda: CompressConfig().structured_ratios)
    quantizers: list[Literal["torch_ao", "torchao", "onnxruntime"]] = Field(default_factory=lambda: CompressConfig().quantizers)
    finetune_epochs: int = Field(default_factory=lambda: CompressConfig().finetune.max_epochs, ge=1)
    finetune_budget_s: float = Field(default_factory=lambda: CompressConfig().finetune.time_budget_s, gt=0)
    max_train_pairs: int | None = Field(default=None, ge=1)
    latency_repeats: int = Field(default_factory=lambda: CompressConfig().latency_repeats, ge=3)
    threads: int = Field(default_factory=lambda: CompressConfig().threads, ge=1)
    timeout_s: float = Field(default=1800.0, gt=0)


class Launched(BaseModel):
    """A run the GUI started: where it writes and how to follow it (never the key)."""

    kind: Literal["evolve", "compress"]
    mode: Literal["local", "deployment"]
    run_id: str
    run_dir: str
    started: float = Field(default_factory=time.time)
    pid: int | None = None
    log_path: str | None = None
    flow_run_id: str | None = None
    candidates: list[str] = Field(default_factory=list)


def prefect_server_url() -> str | None:
    """The configured Prefect API (``PREFECT_API_URL`` or the active profile), or None for local runs."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    try:
        from prefect.settings import PREFECT_API_URL

        return PREFECT_API_URL.value() or None
    except Exception:  # noqa: BLE001 - no Prefect settings: local runs
        return None


# -- seeds ------------------------------------------------------------------------------------

def write_uploads(run_dir: Path, seeds: dict[str, bytes], prelude: bytes | None) -> tuple[str | None, str | None]:
    """Save uploaded seed files and the prelude under ``<run>/ui/``; returns (seed folder, prelude path)."""
    folder = Path(run_dir) / UI_DIR
    seed_folder = prelude_path = None
    if seeds:
        target = folder / "seeds"
        target.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            base = Path(name).name
            if not _SAFE_NAME.match(base):
                raise ValueError(f"seed file name {name!r}: use letters, digits, '_', '.', '-' and end in .py")
            (target / base).write_bytes(data)
        seed_folder = str(target.resolve())
    if prelude:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "prelude.py"
        path.write_bytes(prelude)
        prelude_path = str(path.resolve())
    return seed_folder, prelude_path


# -- command lines and parameters ------------------------------------------------------------------

def evoformer_executable() -> list[str]:
    """The ``evoformer`` console script next to this interpreter (else ``python -m flows.cli``)."""
    script = Path(sys.executable).with_name("evoformer")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "flows.cli"]


def evolve_cli_args(s: EvolveSettings, key_env: str | None) -> list[str]:
    """``evoformer evolve`` arguments for these settings; only the key's variable *name* appears."""
    args = ["evolve", "--run-id", s.run_id, "--runs-dir", s.runs_dir, "--cache-dir", s.cache_dir,
            "--operator", s.operator, "--generations", str(s.generations), "--children", str(s.children), "--seed", str(s.seed),
            "--time-budget", str(s.time_budget_s), "--max-epochs", str(s.max_epochs), "--latency-repeats", str(s.latency_repeats),
            "--max-parallel", str(s.max_parallel), "--timeout", str(s.timeout_s), "--llm-model", s.llm.model, "--no-progress", "--json"]
    if s.source:
        args += ["--source", s.source]
    if s.max_train_pairs:
        args += ["--max-train-pairs", str(s.max_train_pairs)]
    if s.seed_folder:
        args += ["--seed-folder", s.seed_folder]
    if s.prelude_path:
        args += ["--prelude", s.prelude_path]
    if s.llm.base_url:
        args += ["--llm-base-url", s.llm.base_url]
    if key_env:
        args += ["--llm-api-key-env", key_env]
    return args


def evolve_params(s: EvolveSettings, secret_block: str | None) -> Any:
    """The ``EvolveParams`` of a deployment run (the CLI's own translation); the key appears only as
    the Secret block's *name*."""
    from flows.cli import build_parser, evolve_params as params_from_args

    params = params_from_args(build_parser().parse_args(evolve_cli_args(s, None)))
    params.operator.llm.api_key_secret = secret_block
    return params


def compress_cli_args(s: CompressSettings) -> list[str]:
    """``evoformer compress`` arguments for these settings."""
    args = ["compress", "--run", s.run_id, "--runs-dir", s.runs_dir]
    for candidate in s.candidates:
        args += ["--candidate", candidate]
    args += ["--sparsities", *map(str, s.sparsities), "--structured-ratios", *map(str, s.structured_ratios),
             "--quantizers", *s.quantizers, "--finetune-epochs", str(s.finetune_epochs), "--finetune-budget", str(s.finetune_budget_s),
             "--latency-repeats", str(s.latency_repeats), "--threads", str(s.threads), "--timeout", str(s.timeout_s), "--json"]
    if s.max_train_pairs:
        args += ["--max-train-pairs", str(s.max_train_pairs)]
    return args


def compress_params(s: CompressSettings) -> Any:
    """The ``CompressParams`` of a deployment run (the CLI's own translation)."""
    from flows.cli import build_parser, compress_params as params_from_args

    return params_from_args(build_parser().parse_args(compress_cli_args(s)))


def child_env(api_key: str | None) -> dict[str, str]:
    """The child's environment: ours, with the key (if any) under :data:`KEY_ENV` only."""
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    env.update(DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false", PYTHONUNBUFFERED="1")
    if api_key:
        env[KEY_ENV] = api_key
    return env


def _record(run_dir: Path, name: str, payload: dict[str, Any]) -> None:
    folder = run_dir / UI_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(payload, indent=2, default=str))


def _spawn(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen([*evoformer_executable(), *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=os.getcwd())


# -- starting runs ---------------------------------------------------------------------------------

def start_evolve(s: EvolveSettings, api_key: str | None, mode: Literal["local", "deployment"],
                 seeds: dict[str, bytes] | None = None, prelude: bytes | None = None) -> tuple[Launched, subprocess.Popen | None]:
    """Start an evolve run; ``api_key`` only ever goes to the child's environment or a Secret block."""
    if s.operator == "llm" and not (s.llm.base_url or api_key or os.environ.get("OPENAI_BASE_URL")):
        raise ValueError("the LLM operator needs a base URL or an API key")
    run_dir = Path(s.runs_dir) / s.run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_folder, prelude_path = write_uploads(run_dir, seeds or {}, prelude)
    s = s.model_copy(update={"seed_folder": seed_folder or s.seed_folder, "prelude_path": prelude_path or s.prelude_path})
    uses_llm = s.operator != "offline"
    if mode == "local":
        log_path = run_dir / UI_DIR / "evolve.log"
        key_env = KEY_ENV if (api_key and uses_llm) else None
        process = _spawn(evolve_cli_args(s, key_env), child_env(api_key if uses_llm else None), log_path)
        launched = Launched(kind="evolve", mode="local", run_id=s.run_id, run_dir=str(run_dir.resolve()), pid=process.pid,
                            log_path=str(log_path.resolve()))
    else:
        secret = None
        if api_key and uses_llm:
            from prefect.blocks.system import Secret

            Secret(value=api_key).save(s.llm.secret_block, overwrite=True)
            secret = s.llm.secret_block
        from prefect.deployments import run_deployment

        params = evolve_params(s, secret)
        flow_run = run_deployment(EVOLVE_DEPLOYMENT, parameters={"params": params.model_dump(mode="json")}, timeout=0)
        process = None
        launched = Launched(kind="evolve", mode="deployment", run_id=s.run_id, run_dir=str(run_dir.resolve()), flow_run_id=str(flow_run.id))
    _record(run_dir, LAUNCH_FILE, {"settings": s.model_dump(mode="json"), "generations": s.generations} | launched.model_dump(mode="json"))
    return launched, process


def start_compress(s: CompressSettings, mode: Literal["local", "deployment"]) -> tuple[Launched, subprocess.Popen | None]:
    """Start compressing the chosen candidates of a run."""
    run_dir = Path(s.runs_dir) / s.run_id
    if mode == "local":
        log_path = run_dir / UI_DIR / f"compress-{int(time.time())}.log"
        process = _spawn(compress_cli_args(s), child_env(None), log_path)
        launched = Launched(kind="compress", mode="local", run_id=s.run_id, run_dir=str(run_dir.resolve()), pid=process.pid,
                            log_path=str(log_path.resolve()), candidates=s.candidates)
    else:
        from prefect.deployments import run_deployment

        flow_run = run_deployment(COMPRESS_DEPLOYMENT, parameters={"params": compress_params(s).model_dump(mode="json")}, timeout=0)
        process = None
        launched = Launched(kind="compress", mode="deployment", run_id=s.run_id, run_dir=str(run_dir.resolve()),
                            flow_run_id=str(flow_run.id), candidates=s.candidates)
    _record(run_dir, "compress-launch.json", {"settings": s.model_dump(mode="json")} | launched.model_dump(mode="json"))
    return launched, process


# -- following runs ----------------------------------------------------------------------------------

class RunStatus(BaseModel):
    """A launched run's state in words, and whether it is still going."""

    state: str
    running: bool
    detail: str = ""


def status(launched: Launched, process: subprocess.Popen | None = None) -> RunStatus:
    """Local: the child's exit status (or, without the handle, the folder's evidence); deployment: the flow run's state."""
    if launched.mode == "deployment" and launched.flow_run_id:
        try:
            from prefect.client.orchestration import get_client

            with get_client(sync_client=True) as client:
                state = client.read_flow_run(launched.flow_run_id).state
            name = state.name if state else "Unknown"
            return RunStatus(state=name, running=bool(state and not state.is_final()), detail=(state.message or "") if state else "")
        except Exception as exc:  # noqa: BLE001 - the server may be gone
            return RunStatus(state="Unknown", running=False, detail=f"cannot reach the Prefect server: {exc}"[:300])
    if process is not None:
        code = process.poll()
        if code is None:
            return RunStatus(state="Running", running=True)
        return RunStatus(state="Completed" if code == 0 else "Failed", running=False, detail=f"exit status {code}")
    if launched.pid and _alive(launched.pid):
        return RunStatus(state="Running", running=True, detail=f"pid {launched.pid}")
    return RunStatus(state="Finished", running=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie child of ours is not running
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def launched_of(run_dir: Path) -> Launched | None:
    """The GUI's launch record of a run folder, if the GUI started it."""
    data = read_json(Path(run_dir) / UI_DIR / LAUNCH_FILE)
    if not data:
        return None
    try:
        return Launched.model_validate(data)
    except ValueError:
        return None


def log_tail(path: str | None, chars: int = 6000) -> str:
    """The end of a child's log."""
    if not path or not Path(path).is_file():
        return ""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - chars))
        return f.read().decode("utf-8", "replace")
