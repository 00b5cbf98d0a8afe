"""The ``evoformer`` command line. Each sub-command runs a Prefect flow (ephemeral if no server).

Its options are derived from the flow's parameter model (:mod:`evoformer.config`) by jsonargparse:
``evoformer evolve --config configs/nightly.yaml --train.time_budget_s 30``; the flags of the
argparse command line stay as aliases of dotted options (``--time-budget 30``). See docs/cli.md.

Parsing imports pydantic, PyYAML, jsonargparse and the models only; the flow (Prefect, torch,
pandas...) is imported once the arguments are valid, and ``--help`` never loads it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import flows  # noqa: F401  (telemetry off before Prefect loads; known-harmless warnings silenced)
from flows.cli.commands import COMMANDS, UI_HELP, Command, load
from flows.cli.summaries import (  # noqa: F401  (the summary formatters, as before)
    baseline_lines,
    format_compress_summary,
    format_data_summary,
    format_evolve_summary,
    format_pipeline_summary,
    format_synth_summary,
    format_train_summary,
)

__all__ = ["COMMANDS", "build_parser", "main", "parse", "streamlit_command", "top_parser"]


def top_parser() -> argparse.ArgumentParser:
    """``evoformer [-h] COMMAND ...``: the list of commands (each one's options: ``evoformer COMMAND -h``)."""
    parser = argparse.ArgumentParser(
        prog="evoformer",
        description="EvoFormer: LLM-driven architecture search with compression. "
        "Each command runs a Prefect flow (ephemeral if no server).",
        epilog="Every command takes --config FILE.yaml, dotted overrides of its parameter model and --json; "
        "`evoformer COMMAND --help` lists them.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        sub.add_parser(command.name, help=command.help, add_help=False)
    sub.add_parser("ui", help=UI_HELP, add_help=False)
    return parser


def parse(name: str, argv: list[str]) -> tuple[Any, bool]:
    """``(params, as_json)`` of ``evoformer NAME ARGV...``: the command's parameter model, validated."""
    from flows.cli.parser import parse_params

    command: Command = COMMANDS[name]
    if command.positional and argv and not argv[0].startswith("-"):
        argv = [f"--{command.positional}", argv[0], *argv[1:]]
    description = (
        command.help[0].upper() + command.help[1:] + "." + (f" {command.description}" if command.description else "")
    )
    return parse_params(load(command.model), argv, f"evoformer {name}", description, command.aliases)


class _Parser:
    """``build_parser().parse_args(["evolve", ...])``: what callers of the argparse CLI used; the result
    holds the command's validated parameter model (``.params``) and ``.json``."""

    def parse_args(self, argv: list[str]) -> argparse.Namespace:
        name, rest = argv[0], list(argv[1:])
        if name == "ui":
            from flows.cli.ui import ui_parser

            return ui_parser().parse_args(rest)
        params, as_json = parse(name, rest)
        return argparse.Namespace(command=name, params=params, json=as_json)


def build_parser() -> _Parser:
    return _Parser()


def prepare_data_params(args: argparse.Namespace):
    """The data settings (a PrepareDataParams) of parsed ``data``, ``train``, ``evolve``, ``synth`` or
    ``pipeline`` arguments."""
    from evoformer.config import PrepareDataParams

    params = getattr(args.params, "evolve", args.params)
    return params if isinstance(params, PrepareDataParams) else params.data


def evolve_params(args: argparse.Namespace):
    """The EvolveParams of parsed ``evolve`` (or ``pipeline``) arguments."""
    return getattr(args.params, "evolve", args.params)


def compress_params(args: argparse.Namespace):
    """The CompressParams of parsed ``compress`` arguments."""
    return args.params


def streamlit_command(args: argparse.Namespace) -> list[str]:
    from flows.cli.ui import streamlit_command as command

    return command(args)


def _progress(params: Any) -> bool:
    """The data settings' ``progress`` (PrepareDataParams at the top, under ``data`` or ``evolve.data``)."""
    for path in ((), ("data",), ("evolve", "data")):
        node = params
        for name in path:
            node = getattr(node, name, None)
        if node is not None and hasattr(node, "progress") and hasattr(node, "encoder"):
            return bool(node.progress)
    return True


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``evoformer`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in argv:  # tracebacks of expected errors too, in our message and in Prefect's logs
        argv.remove("--debug")
        import os

        from evoformer.errors import DEBUG_ENV

        os.environ[DEBUG_ENV] = "1"
    if not argv or argv[0] not in (*COMMANDS, "ui"):
        top_parser().parse_args(argv)  # prints the help, or the error, and exits
        return 2
    name, rest = argv[0], argv[1:]
    if name == "ui":
        from flows.cli.ui import run_ui

        return run_ui(rest)
    params, as_json = parse(name, rest)
    command = COMMANDS[name]
    if not _progress(params):
        import os

        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # nor the encoder's "Loading weights" bars
    from flows.cli.run import expected_errors

    try:
        summary = load(command.run)(params)
    except expected_errors() as exc:
        from evoformer.errors import debug_enabled

        if debug_enabled():
            import traceback

            traceback.print_exc()
        print(f"evoformer: error: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(load(command.formatter)(summary))
    return 0 if summary.get("status", "ok") == "ok" else 1
