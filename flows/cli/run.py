"""What each sub-command runs: its flow (imported here, when the command runs), on validated params."""

from __future__ import annotations

from typing import Any


def run_data(params) -> dict[str, Any]:
    from flows.data import prepare_data

    return prepare_data(params)


def run_train(params) -> dict[str, Any]:
    from flows.train import train_program

    return train_program(params)


def run_evolve(params) -> dict[str, Any]:
    from flows.evolve import evolve

    return evolve(params)


def run_pipeline(params) -> dict[str, Any]:
    from flows.pipeline import pipeline

    return pipeline(params)


def run_compress(params) -> dict[str, Any]:
    from flows.compress import compress

    summary = compress(params)
    failed = [c["candidate"] for c in summary["candidates"] if c["status"] != "ok"]
    return summary | {"status": "failed" if failed else "ok"}


def run_retrain(params) -> dict[str, Any]:
    from flows.retrain import retrain

    summary = retrain(params)
    failed = [c["id"] for c in summary["candidates"] if c["status"] != "ok"]
    return summary | {"status": "failed" if failed else "ok"}


def run_synth(params) -> dict[str, Any]:
    from flows.synthesize import synthesize

    return synthesize(params)


def expected_errors() -> tuple[type[BaseException], ...]:
    """Errors that are the user's to fix: printed as one line, exit status 2.

    Every input error derives from :class:`~evoformer.errors.UserError`; ``ValueError`` covers
    settings that fail validation, and ``LLMError`` a spending cap reached before any work."""
    from evoformer.errors import UserError
    from evoformer.llm import LLMError

    return (UserError, ValueError, LLMError)
