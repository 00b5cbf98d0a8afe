"""Start evolve and compress runs from the GUI, locally (a child ``evoformer`` process) or through
the Prefect deployments, and tell how they are doing.

The GUI builds the flows' parameter models itself (:class:`~evoformer.config.EvolveParams`,
:class:`~evoformer.config.CompressParams`): ``configs/demo.yaml`` gives the defaults, the form's
values are laid over them (:func:`evolve_params`, :func:`compress_params`). A local run gets them as
a YAML file in its run folder (``<run>/ui/evolve.yaml``, read by ``evoformer evolve --config``); a
deployment run gets them as the flow's parameters.

The LLM API key is an argument of the start functions only; it is never part of a parameter model.
- Local runs: the key goes into the child's environment under :data:`KEY_ENV`, and the params get
  only that variable's *name* (``operator.llm.api_key_env``). The key is written nowhere.
- Deployment runs: the key is saved as a Prefect Secret block (it lives in the server's database),
  and the flow parameters carry only the block's *name* (``operator.llm.api_key_secret``); the flow
  resolves it in memory (``flows/secret_key.py``).
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

from pydantic import BaseModel, Field

from evoformer.config import CompressParams, EvolveParams, PipelineParams, load_params
from evoformer.config.files import DEMO, merge, with_defaults, write_config
from evoformer.runs import new_run_id
from ui.runs import LAUNCH_FILE, UI_DIR, read_json

KEY_ENV = "EVOFORMER_UI_LLM_API_KEY"
DEFAULT_SECRET_BLOCK = "evoformer-llm-key"
EVOLVE_DEPLOYMENT = "evolve/evolve-nightly"
COMPRESS_DEPLOYMENT = "compress/compress"
EVOLVE_FILE = "evolve.yaml"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.py$")
# What the GUI sets on top of configs/demo.yaml: its runs start offline (no endpoint is called
# unless the user picks llm or auto) and without progress bars (the child's output is a log file).
GUI_EVOLVE = {"operator": {"kind": "offline"}, "data": {"progress": False}}


def form_defaults() -> PipelineParams:
    """The form's starting values: configs/demo.yaml, with the GUI's own :data:`GUI_EVOLVE`."""
    demo = load_params(PipelineParams, DEMO)
    return demo.model_copy(
        update={
            "evolve": EvolveParams.model_validate(
                with_defaults(EvolveParams, merge(demo.evolve.model_dump(mode="json"), GUI_EVOLVE))
            )
        }
    )


def evolve_params(values: dict[str, Any]) -> EvolveParams:
    """The run's EvolveParams: the form defaults with ``values`` (nested as in EvolveParams) laid over
    them; ``data.storage.run_id`` is filled with a new id when not given."""
    params = EvolveParams.model_validate(
        with_defaults(EvolveParams, merge(form_defaults().evolve.model_dump(mode="json"), values))
    )
    if not params.data.storage.run_id:
        params.data.storage.run_id = new_run_id()
    return params


def compress_params(run_id: str, runs_dir: str, candidates: list[str], config: dict[str, Any]) -> CompressParams:
    """The CompressParams of compressing ``candidates`` of a run: demo.yaml's compression settings
    with ``config`` (fields of CompressConfig) laid over them."""
    if not candidates:
        raise ValueError("choose at least one candidate to compress")
    step = form_defaults().compression
    return CompressParams.model_validate(
        with_defaults(
            CompressParams,
            {
                "run_id": run_id,
                "candidates": candidates,
                "config": merge(step.config.model_dump(mode="json"), config),
                "limits": step.limits.model_dump(mode="json"),
                "storage": {"runs_dir": runs_dir},
            },
        )
    )


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


# -- command lines ----------------------------------------------------------------------------------


def evoformer_executable() -> list[str]:
    """The ``evoformer`` console script next to this interpreter (else ``python -m flows.cli``)."""
    script = Path(sys.executable).with_name("evoformer")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "flows.cli"]


def command_args(kind: Literal["evolve", "compress"], params_file: Path) -> list[str]:
    """``evoformer <kind> --config <params file> --json``: the whole run is in the file."""
    return [kind, "--config", str(params_file), "--json"]


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
        return subprocess.Popen(
            [*evoformer_executable(), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=os.getcwd(),
        )


# -- starting runs ---------------------------------------------------------------------------------


def start_evolve(
    params: EvolveParams,
    api_key: str | None,
    mode: Literal["local", "deployment"],
    seeds: dict[str, bytes] | None = None,
    prelude: bytes | None = None,
    secret_block: str = DEFAULT_SECRET_BLOCK,
) -> tuple[Launched, subprocess.Popen | None]:
    """Start an evolve run; ``api_key`` only ever goes to the child's environment or a Secret block."""
    llm = params.operator.llm
    if params.operator.kind == "llm" and not (llm.base_url or api_key or os.environ.get("OPENAI_BASE_URL")):
        raise ValueError("the LLM operator needs a base URL or an API key")
    params = params.model_copy(deep=True)
    run_id = params.data.storage.run_id = params.data.storage.run_id or new_run_id()
    run_dir = Path(params.data.storage.runs_dir) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_folder, prelude_path = write_uploads(run_dir, seeds or {}, prelude)
    params.seed_folder, params.prelude_path = seed_folder or params.seed_folder, prelude_path or params.prelude_path
    uses_llm = params.operator.kind != "offline"
    if mode == "local":
        if api_key and uses_llm:
            params.operator.llm.api_key_env = KEY_ENV  # the variable's name; the key is in the child's environment only
        log_path = run_dir / UI_DIR / "evolve.log"
        params_file = write_config(
            params,
            run_dir / UI_DIR / EVOLVE_FILE,
            header="evoformer evolve --config this-file (written by the GUI; never holds a key)",
        )
        process = _spawn(command_args("evolve", params_file), child_env(api_key if uses_llm else None), log_path)
        launched = Launched(
            kind="evolve",
            mode="local",
            run_id=run_id,
            run_dir=str(run_dir.resolve()),
            pid=process.pid,
            log_path=str(log_path.resolve()),
        )
    else:
        if api_key and uses_llm:
            from prefect.blocks.system import Secret

            Secret(value=api_key).save(secret_block, overwrite=True)
            params.operator.llm.api_key_secret = secret_block
        from prefect.deployments import run_deployment

        flow_run = run_deployment(EVOLVE_DEPLOYMENT, parameters={"params": params.model_dump(mode="json")}, timeout=0)
        process = None
        launched = Launched(
            kind="evolve",
            mode="deployment",
            run_id=run_id,
            run_dir=str(run_dir.resolve()),
            flow_run_id=str(flow_run.id),
        )
    _record(
        run_dir,
        LAUNCH_FILE,
        {"params": params.model_dump(mode="json"), "generations": params.generations}
        | launched.model_dump(mode="json"),
    )
    return launched, process


def start_compress(
    params: CompressParams, mode: Literal["local", "deployment"]
) -> tuple[Launched, subprocess.Popen | None]:
    """Start compressing the chosen candidates of a run."""
    run_dir = Path(params.storage.runs_dir) / params.run_id
    if mode == "local":
        stamp = int(time.time())
        log_path = run_dir / UI_DIR / f"compress-{stamp}.log"
        params_file = write_config(
            params,
            run_dir / UI_DIR / f"compress-{stamp}.yaml",
            header="evoformer compress --config this-file (written by the GUI)",
        )
        process = _spawn(command_args("compress", params_file), child_env(None), log_path)
        launched = Launched(
            kind="compress",
            mode="local",
            run_id=params.run_id,
            run_dir=str(run_dir.resolve()),
            pid=process.pid,
            log_path=str(log_path.resolve()),
            candidates=params.candidates,
        )
    else:
        from prefect.deployments import run_deployment

        flow_run = run_deployment(COMPRESS_DEPLOYMENT, parameters={"params": params.model_dump(mode="json")}, timeout=0)
        process = None
        launched = Launched(
            kind="compress",
            mode="deployment",
            run_id=params.run_id,
            run_dir=str(run_dir.resolve()),
            flow_run_id=str(flow_run.id),
            candidates=params.candidates,
        )
    _record(
        run_dir, "compress-launch.json", {"params": params.model_dump(mode="json")} | launched.model_dump(mode="json")
    )
    return launched, process


# -- following runs ----------------------------------------------------------------------------------


class RunStatus(BaseModel):
    """A launched run's state in words, and whether it is still going."""

    state: str
    running: bool
    detail: str = ""


def status(launched: Launched, process: subprocess.Popen | None = None) -> RunStatus:
    """Local: the child's exit status (without the handle, the folder's evidence); deployment: the flow run's state."""
    if launched.mode == "deployment" and launched.flow_run_id:
        try:
            from prefect.client.orchestration import get_client

            with get_client(sync_client=True) as client:
                state = client.read_flow_run(launched.flow_run_id).state
            name = state.name if state else "Unknown"
            return RunStatus(
                state=name, running=bool(state and not state.is_final()), detail=(state.message or "") if state else ""
            )
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
