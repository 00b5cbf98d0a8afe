"""Prefect tasks of the synthesize flow: import, generate, gate, publish. LLM replies and sentence
embeddings are cached on disk by the domain code, so these tasks are not cached by Prefect."""

from __future__ import annotations

from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from evoformer.features import EncoderConfig
from evoformer.features.sentences import embed_texts
from evoformer.llm import LLMClient
from evoformer.synthetic.gates import GateConfig, GateOutcome, GateReport, run_gates
from evoformer.synthetic.generator import Generated, GenerationConfig, generate
from evoformer.synthetic.importer import ImportConfig, Imported, import_files
from evoformer.synthetic.records import SyntheticExample
from evoformer.synthetic.report import file_rows, gate_rows, report_markdown
from evoformer.synthetic.verify import judge_label


@task(name="import-synthetic", cache_policy=NO_CACHE)
def import_task(config: ImportConfig) -> Imported:
    """Read and validate the synthetic files."""
    return import_files(config)


@task(name="generate-synthetic", cache_policy=NO_CACHE)
def generate_task(client: LLMClient, train: pd.DataFrame, config: GenerationConfig) -> Generated:
    """Ask the LLM for examples per label and topic (few-shot from train); logs the plan, the
    requests' progress and the time."""
    return generate(client, train, config, progress=get_run_logger().info)


@task(name="quality-gates", cache_policy=NO_CACHE)
def gates_task(
    examples: list[SyntheticExample],
    schema: GateReport,
    splits: dict[str, pd.DataFrame],
    config: GateConfig,
    encoder: EncoderConfig,
    cache_dir: str,
    client: LLMClient | None = None,
) -> GateOutcome:
    """Every gate, with frozen-encoder embeddings cached under ``cache_dir``; logs the sizes, the
    embedding and judge progress, each gate's counts and the time."""
    log = get_run_logger().info
    judge = (lambda claim, evidence: judge_label(client, claim, evidence)) if client is not None else None
    return run_gates(
        examples, schema, splits, config, lambda texts: embed_texts(texts, encoder, cache_dir, log), judge, log
    )


@task(name="publish-synthetic-artifacts", cache_policy=NO_CACHE)
def publish_synthetic_artifacts(report: dict[str, Any]) -> None:
    """Tables of gate counts and imported files, and the markdown report."""
    create_table_artifact(
        key="synthetic-gates", table=gate_rows(report), description="Quality gates: input, kept, dropped, reasons."
    )
    files = file_rows(report)
    if files:
        create_table_artifact(
            key="synthetic-files", table=files, description="Imported files: rows, examples, rejected."
        )
    create_markdown_artifact(
        key="synthetic-report", markdown=report_markdown(report), description="Synthetic data report."
    )
