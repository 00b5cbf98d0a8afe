"""The sub-commands: which parameter model each one parses, its aliases, its flow and its summary.

Nothing here imports a model, a flow or a formatter: they are named as ``module:attribute`` and
loaded only for the command that runs (``evoformer --help`` imports none of them).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from flows.cli.aliases import Alias, append, const, many, spread, under, value


def load(path: str) -> Any:
    """``'package.module:attribute'`` -> the attribute."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    model: str  # 'module:Class' of the parameter model
    run: str  # 'module:function' taking the params and returning the summary dict
    formatter: str  # 'module:function' turning the summary into text
    aliases: list[Alias] = field(default_factory=list)
    description: str = ""
    positional: str | None = None  # a leading bare argument is this option's value (train's program)


# -- aliases: each names a dotted option of the command's model (its prefix differs per command) ---


def storage_aliases(prefix: str) -> list[Alias]:
    return under(
        prefix,
        [
            value("--runs-dir", "storage.runs_dir"),
            value("--cache-dir", "storage.cache_dir"),
            value("--run-id", "storage.run_id"),
        ],
    )


def data_aliases(prefix: str) -> list[Alias]:
    """The data options (a :class:`~evoformer.config.PrepareDataParams` at ``prefix``)."""
    return under(
        prefix,
        [
            value("--source", "data.source"),
            value("--format", "data.format"),
            value("--claim-column", "data.claim_column"),
            value("--evidence-column", "data.evidence_column"),
            value("--label-column", "data.label_column"),
            value("--claim-id-column", "data.claim_id_column"),
            const("--skip-bad-rows", "data.on_bad_rows", "skip"),
            spread("--ratios", "split.train", "split.val", "split.test"),
            value("--split-seed", "split.seed"),
            value("--encoder", "encoder.encoder"),
            value("--max-length", "encoder.max_length"),
            value("--encoder-layers", "encoder.layers"),
            value("--batch-size", "encoder.batch_size"),
            const("--no-progress", "progress", "false"),
            value("--augmented", "augmented"),
        ],
    ) + storage_aliases(prefix)


def train_aliases(prefix: str) -> list[Alias]:
    """Training and sandbox options (``train`` and ``limits`` at ``prefix``)."""
    return under(
        prefix,
        [
            value("--max-epochs", "train.max_epochs"),
            value("--time-budget", "train.time_budget_s"),
            value("--train-batch-size", "train.batch_size"),
            value("--lr", "train.learning_rate"),
            value("--patience", "train.patience"),
            value("--train-seed", "train.seed"),
            value("--max-train-pairs", "train.max_train_pairs"),
            value("--latency-repeats", "train.latency_repeats"),
            value("--timeout", "limits.timeout_s"),
            value("--memory-mb", "limits.memory_mb"),
            value("--threads", "limits.threads"),
        ],
    )


def llm_aliases(prefix: str) -> list[Alias]:
    """The LLM client's endpoint and budget (an :class:`~evoformer.config.LLMConfig` at ``prefix``)."""
    return under(
        prefix,
        [
            value("--llm-base-url", "base_url"),
            value("--llm-model", "model"),
            value("--llm-api-key-env", "api_key_env"),
            value("--llm-timeout", "timeout_s"),
            value("--llm-max-retries", "max_retries"),
            value("--price-prompt", "price_prompt_per_1k"),
            value("--price-completion", "price_completion_per_1k"),
            value("--llm-budget-usd", "budget_usd"),
            value("--llm-budget-tokens", "budget_tokens"),
        ],
    )


def evolve_aliases(prefix: str) -> list[Alias]:
    """The options of an :class:`~evoformer.config.EvolveParams` at ``prefix`` (``evolve`` and ``pipeline``)."""
    p = f"{prefix}." if prefix else ""
    return (
        under(
            prefix,
            [
                value("--generations", "generations"),
                value("--children", "children"),
                value("--seed", "seed"),
                value("--operator", "operator.kind"),
                value("--k", "selection.parents_k"),
                value("--top-p", "selection.top_p"),
                value("--crossover-rate", "selection.crossover_rate"),
                value("--fitness", "selection.fitness"),
                value("--error-threshold", "selection.error_threshold"),
                many("--temperatures", "operator.temperatures"),
                value("--seed-folder", "seed_folder"),
                value("--prelude", "prelude_path"),
                value("--max-parallel", "max_parallel"),
                value("--runner", "runner.kind"),
                value("--runner-address", "runner.address"),
                value("--local-workers", "runner.local_workers"),
            ],
        )
        + llm_aliases(f"{p}operator.llm")
        + train_aliases(prefix)
        + data_aliases(f"{p}data")
    )


def compress_config_aliases(prefix: str) -> list[Alias]:
    return under(
        prefix,
        [
            many("--sparsities", "sparsities", empty_ok=True),
            many("--structured-ratios", "structured_ratios", empty_ok=True),
            many("--quantizers", "quantizers", empty_ok=True),
            value("--finetune-epochs", "finetune.max_epochs"),
            value("--finetune-budget", "finetune.time_budget_s"),
            value("--latency-repeats", "latency_repeats"),
        ],
    )


_CLI = "flows.cli.run"
_FMT = "flows.cli.summaries"

COMMANDS: dict[str, Command] = {
    c.name: c
    for c in [
        Command(
            "data",
            "load, split by claim, featurize and report baselines (flow prepare_data)",
            "evoformer.config.data:PrepareDataParams",
            f"{_CLI}:run_data",
            f"{_FMT}:format_data_summary",
            data_aliases(""),
        ),
        Command(
            "train",
            "train one candidate program in the sandbox (flow train_program)",
            "evoformer.config.train:TrainProgramParams",
            f"{_CLI}:run_train",
            f"{_FMT}:format_train_summary",
            [value("--program", "program_path"), value("--prelude", "prelude_path")]
            + train_aliases("")
            + data_aliases("data"),
            "The program (a .py defining build_model(input_dim, num_classes)) may also come first, without a flag: "
            "evoformer train PROGRAM.py [OPTIONS].",
            positional="program_path",
        ),
        Command(
            "evolve",
            "evolve candidate programs from the seeds (flow evolve)",
            "evoformer.config.evolve:EvolveParams",
            f"{_CLI}:run_evolve",
            f"{_FMT}:format_evolve_summary",
            evolve_aliases("") + [value("--compress-front", "compress.mode")],
        ),
        Command(
            "pipeline",
            "data, optional synthesis, evolve, compress the top K, report.html (flow pipeline)",
            "evoformer.config.pipeline:PipelineParams",
            f"{_CLI}:run_pipeline",
            f"{_FMT}:format_pipeline_summary",
            evolve_aliases("evolve")
            + [const("--synthesize", "synthesis.enabled", "true"), value("--compress-top", "compression.top_k")]
            + [
                Alias(f"--compress-{a.flag[2:]}", a.targets, a.kind, a.const, a.empty_ok)
                for a in compress_config_aliases("compression.config")
            ],
            "make demo runs: evoformer pipeline --config configs/demo.yaml --run-id demo-...",
        ),
        Command(
            "compress",
            "prune and quantize trained candidates of a run and measure them (flow compress)",
            "evoformer.config.compress:CompressParams",
            f"{_CLI}:run_compress",
            f"{_FMT}:format_compress_summary",
            [value("--run", "run_id"), append("--candidate", "candidates"), value("--top", "top_k")]
            + compress_config_aliases("config")
            + [
                value("--max-train-pairs", "config.finetune.max_train_pairs"),
                value("--threads", "config.threads", "limits.threads"),
                value("--timeout", "limits.timeout_s"),
                value("--memory-mb", "limits.memory_mb"),
                value("--runs-dir", "storage.runs_dir"),
            ],
        ),
        Command(
            "retrain",
            "train chosen (or all failed) candidates of a run again, in place, with other limits (flow retrain)",
            "evoformer.config.retrain:RetrainParams",
            f"{_CLI}:run_retrain",
            f"{_FMT}:format_retrain_summary",
            [
                value("--run", "run_id"),
                append("--candidate", "candidates"),
                const("--all-failed", "failed", "true"),
                value("--runs-dir", "storage.runs_dir"),
            ],
            "evoformer retrain --run demo-1 --all-failed --limits '{\"timeout_s\": 1800}'",
        ),
        Command(
            "synth",
            "import / generate synthetic examples, gate them, write an augmented train set (flow synthesize)",
            "evoformer.config.synthesize:SynthesizeParams",
            f"{_CLI}:run_synth",
            f"{_FMT}:format_synth_summary",
            [
                append("--from-file", "imports.paths"),
                value("--label", "imports.label"),
                const("--no-label-from-filename", "imports.label_from_filename", "false"),
                value("--generator", "imports.generator"),
                value("--generate", "generation.per_label"),
                many("--gen-labels", "generation.labels"),
                value("--examples-per-request", "generation.examples_per_request"),
                value("--few-shot", "generation.few_shot"),
                value("--temperature", "generation.temperature"),
                value("--gen-seed", "generation.seed"),
                value("--near-dup", "gates.near_duplicate_threshold"),
                value("--decontam", "gates.decontamination_threshold"),
                value("--verify", "gates.verify"),
                value("--verify-action", "gates.verify_action"),
                value("--balance", "gates.balance.mode"),
                value("--max-fraction", "gates.balance.max_fraction_of_train"),
            ]
            + llm_aliases("generation.llm")
            + data_aliases("data"),
        ),
    ]
}

UI_HELP = "start the GUI (a Streamlit app): upload seeds, evolve, watch, compress"
