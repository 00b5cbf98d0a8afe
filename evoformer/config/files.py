"""YAML files of the parameter models: ``configs/*.yaml`` and the files the GUI writes for a run.

A file holds (part of) one model's fields, nested as in the model; what it leaves out takes the
model's default. ``configs/demo.yaml`` (a :class:`~evoformer.config.PipelineParams`) is the demo
budget of ``make demo``, the ``pipeline`` deployment and the GUI's form; ``configs/nightly.yaml``
(an :class:`~evoformer.config.EvolveParams`) is the ``evolve-nightly`` deployment's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs"
DEMO = CONFIGS_DIR / "demo.yaml"
NIGHTLY = CONFIGS_DIR / "nightly.yaml"

Model = TypeVar("Model", bound=BaseModel)


def read_config(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file (an empty file is an empty mapping)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read config {path}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config {path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it, nested mappings merged key by key."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _over_default(default: BaseModel, override: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``default`` with ``override`` laid over them, nested models recursively."""
    base = {name: getattr(default, name) for name in type(default).model_fields}
    for key, value in override.items():
        current = base.get(key)
        base[key] = (
            _over_default(current, value) if isinstance(current, BaseModel) and isinstance(value, dict) else value
        )
    return base


def with_defaults(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` where each partly given nested model starts from the *parent's* default for it.

    Plain validation would fill a partial ``train: {max_epochs: 3}`` of :class:`EvolveParams` from
    ``TrainConfig``'s own defaults (a 240 s budget); EvolveParams' default is a 120 s budget, and so
    is the result here. Files and command lines give partial sections; they all go through this."""
    out = dict(data)
    for name, field in model.model_fields.items():
        if isinstance(out.get(name), dict) and not field.is_required():
            default = field.get_default(call_default_factory=True)
            if isinstance(default, BaseModel):
                out[name] = _over_default(default, out[name])
    return out


def load_params(model: type[Model], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Model:
    """``model`` validated from the file at ``path`` (if any) with ``overrides`` laid over it;
    what neither gives is the model's default (see :func:`with_defaults`)."""
    return model.model_validate(with_defaults(model, merge(read_config(path) if path else {}, overrides or {})))


def write_config(params: BaseModel, path: str | Path, header: str = "") -> Path:
    """Write ``params`` as YAML (every field, JSON-compatible values), e.g. for ``evoformer <cmd> --config``."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    path.write_text("".join(f"# {line}\n" for line in header.splitlines()) + text)
    return path
