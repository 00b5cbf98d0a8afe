"""A sub-command's parser, derived from its parameter model by jsonargparse.

Every field of the model is an option, nested models as dotted options (``--train.time_budget_s``),
with the field's description, type and default as help. ``--config FILE.yaml`` loads settings
from a file (any subset of the model, nested as in the model); ``--print_config`` prints the
full settings as YAML and exits. The aliases of :mod:`flows.cli.aliases` are rewritten into dotted
options before parsing and are listed first in the help.

Parsing yields a dict that the model validates: the model, not the parser, is the one judge.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from flows.cli.aliases import Alias, rewrite


def _type_label(hint: Any) -> str:
    """A short name of a field's type: ``int >= 0``, ``str | null``, ``list[float]``, ``{a,b}``."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        base, *metadata = typing.get_args(hint)
        bounds = []
        for item in metadata:
            for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("min_length", "len >=")):
                if getattr(item, attr, None) is not None:
                    bounds.append(f"{sign} {getattr(item, attr)}")
        return _type_label(base) + (" " + ", ".join(bounds) if bounds else "")
    if origin is typing.Literal:
        return "{" + ",".join(str(a) for a in typing.get_args(hint)) + "}"
    if origin in (typing.Union, types.UnionType):
        return " | ".join("null" if a is type(None) else _type_label(a) for a in typing.get_args(hint))
    if origin in (list, tuple, set):
        return f"{origin.__name__}[{', '.join(_type_label(a) for a in typing.get_args(hint))}]"
    return getattr(hint, "__name__", str(hint))


def _formatter_class():
    from jsonargparse import DefaultHelpFormatter

    class HelpFormatter(DefaultHelpFormatter):
        """jsonargparse's help with compact types (``int >= 1`` instead of ``Annotated[int, Ge(ge=1)]``)."""

        def _get_type_str(self, action: argparse.Action) -> str | None:
            hint = getattr(action, "_typehint", None)
            if hint is not None:
                return _type_label(hint)
            return super()._get_type_str(action)

    return HelpFormatter


class _Shortcut(argparse.Action):
    """A help line for an option taken off the command line before parsing (aliases, --config...)."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        kwargs["nargs"] = None if kwargs.get("metavar") else 0  # a metavar only to show "--flag V" in the help
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # pragma: no cover - rewritten away
        raise argparse.ArgumentError(self, "internal: alias not rewritten")


def _describe(alias: Alias, target: argparse.Action | None) -> str:
    text = f"= {alias.describe()}"
    if target is not None and target.help and target.help is not argparse.SUPPRESS:
        text += f". {target.help}"
    if (
        target is not None
        and alias.kind in ("value", "list", "append")
        and target.default not in (None, argparse.SUPPRESS)
    ):
        default = target.default
        text += f" (default: {list(default) if isinstance(default, (list, tuple)) else default})"
    return text.replace("%", "%%")


def build_parser(model: type[BaseModel], prog: str, description: str, aliases: list[Alias]):
    """The jsonargparse parser of ``model``: its dotted options and the help of ``--config``, ``--json``,
    ``--print_config`` and the aliases (these are taken off the command line before it parses)."""
    from jsonargparse import ArgumentParser
    from jsonargparse._actions import (  # internal, hence the exact pin in constraints.txt
        _ActionConfigLoad,
        remove_actions,
    )

    parser = ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=_formatter_class(),
        default_meta=False,
        print_config=None,
        usage=f"{prog} [--config FILE.yaml] [--json] [--print_config] [OPTIONS]",
    )
    parser.add_class_arguments(model, nested_key=None, as_group=True, fail_untyped=False)
    for action in parser._actions:  # a required field may come from --config: the model checks it
        if action.required:
            action.required = False
            action.help = (action.help or "") + " Required."
    # One way to load settings from a file: --config (jsonargparse would also add --operator FILE etc.).
    loaders = [a for a in parser._actions if isinstance(a, _ActionConfigLoad)]
    remove_actions(parser, (_ActionConfigLoad,))
    for action in loaders:
        for option in action.option_strings:
            parser._option_string_actions.pop(option, None)
    general = parser._action_groups[1]  # "options": after -h
    for flag, metavar, text in GENERAL_OPTIONS:
        general._add_action(_Shortcut([flag], "", help=text.replace("%", "%%"), metavar=metavar))
    by_dest = {a.dest: a for a in parser._actions}
    group = parser.add_argument_group(
        "aliases (short flags, as before; each stands for the dotted option after the =; V: a value)"
    )
    for alias in aliases:
        if alias.flag in parser._option_string_actions:  # the option itself (e.g. evolve's --generations)
            continue
        metavar = {"value": "V", "list": "V...", "append": "V", "spread": " ".join("V" * len(alias.targets))}.get(
            alias.kind
        )
        group.add_argument(
            alias.flag, action=_Shortcut, help=_describe(alias, by_dest.get(alias.target)), metavar=metavar
        )
    # The aliases right after the general options, before the model's groups.
    parser._action_groups.remove(group)
    parser._action_groups.insert(2, group)
    return parser


GENERAL_OPTIONS = (
    (
        "--config",
        "FILE.yaml",
        "YAML file of settings: any part of the model, nested as the dotted options below "
        "(repeatable; later files win). Options on the command line override it, wherever they stand.",
    ),
    ("--json", None, "Print the summary as JSON on stdout."),
    ("--print_config", None, "Print the resulting settings as YAML (usable as --config) and exit."),
)


def _format_validation(exc: ValidationError, aliases: list[Alias]) -> str:
    short = {a.target: a.flag for a in aliases if a.kind != "const"}
    lines = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        flag = f"--{where}" + (f" ({short[where]})" if where in short else "") if where else "settings"
        got = error.get("input")
        lines.append(f"{flag}: {error['msg']}" + ("" if isinstance(got, dict) or got is None else f" (got {got!r})"))
    return "; ".join(lines)


def split_general(argv: list[str]) -> tuple[list[str], list[str], bool, bool]:
    """``(config files, the other arguments, --json, --print_config)``."""
    files, rest, as_json, print_config = [], [], False, False
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == "--config" or token.startswith("--config="):
            if "=" in token:
                files.append(token.split("=", 1)[1])
            elif i < len(argv):
                files.append(argv[i])
                i += 1
            else:
                raise ValueError("--config needs a file")
        elif token == "--json":
            as_json = True
        elif token in ("--print_config", "--print-config"):
            print_config = True
        else:
            rest.append(token)
    return files, rest, as_json, print_config


def _fail(prog: str, message: str) -> None:
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse_params(
    model: type[BaseModel], argv: list[str], prog: str, description: str, aliases: list[Alias]
) -> tuple[BaseModel, bool]:
    """``(params, as_json)`` from a sub-command's arguments: the model's defaults, then the
    ``--config`` files, then the options. Exits 2 with a message on a bad one (0 after ``--help``
    or ``--print_config``)."""
    from evoformer.config.files import merge, read_config, with_defaults

    try:
        files, rest, as_json, print_config = split_general(rewrite(argv, aliases))
        settings: dict[str, Any] = {}
        for path in files:
            settings = merge(settings, read_config(path))
    except ValueError as exc:
        _fail(prog, str(exc))
    parser = build_parser(model, prog, description, aliases)
    given = parser.parse_args(rest, defaults=False).as_dict()
    given.pop("__path__", None)
    try:
        params = model.model_validate(with_defaults(model, merge(settings, given)))
    except ValidationError as exc:
        _fail(prog, _format_validation(exc, aliases))
    if print_config:
        import yaml

        print(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False, allow_unicode=True), end="")
        raise SystemExit(0)
    return params, as_json
