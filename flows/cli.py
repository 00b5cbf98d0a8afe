"""The ``evoformer`` command line. Each sub-command runs a Prefect flow (ephemeral if no server)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import flows  # noqa: F401  (telemetry off before Prefect loads)
from evoformer.candidates.job import TrainConfig
from evoformer.sandbox.limits import SandboxLimits


def _add_storage_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", help="root of run folders (default: $EVOFORMER_RUNS or ./runs)")
    parser.add_argument("--cache-dir", help="feature cache (default: $EVOFORMER_CACHE or ./.cache/evoformer)")
    parser.add_argument("--run-id", help="run folder name (default: a new timestamped id)")
    parser.add_argument("--json", action="store_true", help="print the run summary as JSON on stdout")


def _add_data_args(parser: argparse.ArgumentParser) -> None:
    from evoformer.data import DataSourceConfig, SplitConfig
    from evoformer.features import EncoderConfig

    source, split, encoder = DataSourceConfig(), SplitConfig(), EncoderConfig()
    parser.add_argument("--source", help="data file, or 'hub' (default: $EVOFORMER_DATA, shared file, hub)")
    parser.add_argument("--format", choices=["auto", "climate-fever", "pairs"], default=source.format)
    parser.add_argument("--claim-column", default=source.claim_column)
    parser.add_argument("--evidence-column", default=source.evidence_column)
    parser.add_argument("--label-column", default=source.label_column)
    parser.add_argument("--claim-id-column")
    parser.add_argument("--skip-bad-rows", action="store_true", help="skip and count malformed rows instead of failing")
    parser.add_argument("--ratios", nargs=3, type=float, metavar=("TRAIN", "VAL", "TEST"), default=(split.train, split.val, split.test))
    parser.add_argument("--split-seed", type=int, default=split.seed)
    parser.add_argument("--encoder", default=encoder.encoder, help="bundled default or a local HF model folder")
    parser.add_argument("--max-length", type=int, default=encoder.max_length)
    parser.add_argument("--encoder-layers", type=int, default=encoder.layers,
                        help="token states are the mean of the encoder's last N hidden layers")
    parser.add_argument("--batch-size", type=int, default=encoder.batch_size)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--augmented", help="augmented training set from `evoformer synth` (folder); replaces train only")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evoformer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="load, split by claim, featurize and report baselines (flow prepare_data)")
    _add_data_args(data)
    _add_storage_args(data)
    data.set_defaults(handler=_run_data, formatter=format_data_summary)

    train = sub.add_parser("train", help="train one candidate program in the sandbox (flow train_program)")
    train.add_argument("program", help="candidate program (.py) defining build_model(input_dim, num_classes)")
    train.add_argument("--prelude", help="static helper code prepended to the program")
    _add_train_args(train, TrainConfig(), SandboxLimits())
    _add_data_args(train)
    _add_storage_args(train)
    train.set_defaults(handler=_run_train, formatter=format_train_summary)

    _add_evolve_parser(sub)
    _add_pipeline_parser(sub)
    _add_compress_parser(sub)
    _add_synth_parser(sub)
    _add_ui_parser(sub)
    return parser


def _add_ui_parser(sub: Any) -> None:
    ui = sub.add_parser("ui", help="start the GUI (a Streamlit app): upload seeds, evolve, watch, compress")
    ui.add_argument("--port", type=int, default=8501)
    ui.add_argument("--address", default="127.0.0.1", help="address to listen on (default: loopback only)")
    ui.add_argument("--runs-dir", help="root of run folders (default: $EVOFORMER_RUNS or ./runs)")
    ui.add_argument("--cache-dir", help="feature cache (default: $EVOFORMER_CACHE or ./.cache/evoformer)")
    ui.set_defaults(handler=_run_ui)


def streamlit_command(args: argparse.Namespace) -> list[str]:
    """``streamlit run ui/app.py`` headless, telemetry off, on the given address and port."""
    from pathlib import Path

    import ui

    app = Path(ui.__file__).with_name("app.py")
    return [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal", "--server.port", str(args.port), "--server.address", args.address]


def _run_ui(args: argparse.Namespace) -> dict[str, Any]:
    """Replace this process with the Streamlit server (so signals reach it directly)."""
    import os

    env = dict(os.environ, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", DO_NOT_TRACK="1")
    if args.runs_dir:
        env["EVOFORMER_RUNS"] = args.runs_dir
    if args.cache_dir:
        env["EVOFORMER_CACHE"] = args.cache_dir
    print(f"EvoFormer GUI on http://{args.address}:{args.port}", file=sys.stderr, flush=True)
    command = streamlit_command(args)
    os.execve(command[0], command, env)
    return {"status": "failed"}  # not reached


def _add_compress_parser(sub: Any) -> None:
    from evoformer.compression.config import CompressConfig
    from flows.compress import CompressParams

    config, limits = CompressConfig(), CompressParams.model_fields["limits"].default_factory()
    compress = sub.add_parser("compress", help="prune and quantize trained candidates of a run and measure them (flow compress)")
    compress.add_argument("--run", required=True, help="run id (a folder under --runs-dir)")
    which = compress.add_mutually_exclusive_group()
    which.add_argument("--candidate", action="append", default=[], help="candidate id (repeatable), e.g. g03-c05")
    which.add_argument("--top", type=int, default=1, help="the K best candidates by val macro-F1 (default 1)")
    _add_compress_config_args(compress)
    compress.add_argument("--max-train-pairs", type=int, help="fine-tune on a subsample of train (smoke runs)")
    compress.add_argument("--threads", type=int, default=config.threads, help="fixed threads for every latency figure")
    compress.add_argument("--timeout", type=float, default=limits.timeout_s, help="hard wall-clock limit of the sandbox (s)")
    compress.add_argument("--memory-mb", type=int, default=limits.memory_mb)
    compress.add_argument("--runs-dir", help="root of run folders (default: $EVOFORMER_RUNS or ./runs)")
    compress.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    compress.set_defaults(handler=_run_compress, formatter=format_compress_summary)


def _add_compress_config_args(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """Pruning, quantization and fine-tuning options (``prefix`` 'compress-' inside ``pipeline``)."""
    from evoformer.compression.config import CompressConfig

    config = CompressConfig()
    parser.add_argument(f"--{prefix}sparsities", type=float, nargs="*", default=config.sparsities, help="unstructured pruning levels")
    parser.add_argument(f"--{prefix}structured-ratios", type=float, nargs="*", default=config.structured_ratios,
                        help="share of channels / neurons removed by structured pruning")
    parser.add_argument(f"--{prefix}quantizers", nargs="*", choices=["torch_ao", "torchao", "onnxruntime"], default=config.quantizers)
    parser.add_argument(f"--{prefix}finetune-epochs", type=int, default=config.finetune.max_epochs)
    parser.add_argument(f"--{prefix}finetune-budget", type=float, default=config.finetune.time_budget_s, help="seconds per fine-tuning")
    parser.add_argument(f"--{prefix}latency-repeats", type=int, default=config.latency_repeats)


def _compress_config(args: argparse.Namespace, prefix: str = "", **overrides: Any):
    from evoformer.compression.config import CompressConfig

    option = {name: getattr(args, prefix.replace("-", "_") + name) for name in
              ("sparsities", "structured_ratios", "quantizers", "finetune_epochs", "finetune_budget", "latency_repeats")}
    defaults = CompressConfig()
    finetune = defaults.finetune.model_copy(update={
        "max_epochs": option["finetune_epochs"], "time_budget_s": option["finetune_budget"],
        "max_train_pairs": overrides.pop("max_train_pairs", None),
    })
    return CompressConfig(sparsities=option["sparsities"], structured_ratios=option["structured_ratios"], quantizers=option["quantizers"],
                          finetune=finetune, latency_repeats=option["latency_repeats"], **overrides)


def _run_compress(args: argparse.Namespace) -> dict[str, Any]:
    from flows.compress import compress

    summary = compress(compress_params(args))
    failed = [c["candidate"] for c in summary["candidates"] if c["status"] != "ok"]
    return summary | {"status": "failed" if failed else "ok"}


def compress_params(args: argparse.Namespace):
    """Translate ``compress`` arguments into the flow's parameter model (also used by the GUI)."""
    from evoformer.runs import StorageConfig
    from flows.compress import CompressParams

    return CompressParams(
        run_id=args.run, candidates=args.candidate, top_k=args.top,
        config=_compress_config(args, max_train_pairs=args.max_train_pairs, threads=args.threads),
        limits=SandboxLimits(timeout_s=args.timeout, memory_mb=args.memory_mb, threads=args.threads),
        storage=StorageConfig(**({"runs_dir": args.runs_dir} if args.runs_dir else {})),
    )


def baseline_lines(baselines: dict[str, dict[str, float]]) -> list[str]:
    """The baselines (majority class first) next to any quality figure."""
    return [f"baseline {name:<10} val {scores['val']:.4f}  test {scores['test']:.4f}  (macro-F1)" for name, scores in baselines.items()]


def format_compress_summary(summary: dict[str, Any]) -> str:
    """The comparison table of every compressed candidate (ratios against its fp32 model)."""
    import pandas as pd

    lines = [f"run {summary['run_id']}  ->  {summary['run_dir']}"]
    for entry in summary["candidates"]:
        lines += ["", f"{entry['candidate']}: {entry['status']}" + (f" ({entry['reason']})" if entry["reason"] else "")
                  + f"   results: {entry['folder']}"]
        if entry["table"]:
            with pd.option_context("display.width", 250, "display.max_columns", 30, "display.max_colwidth", 60):
                lines.append(pd.DataFrame(entry["table"]).drop(columns=["status"]).to_string(index=False, na_rep="-"))
            lines.append("size_x = fp32 bytes / variant bytes; speedup = fp32 ms / variant ms (same run, "
                         f"{entry['environment'].get('threads', '?')} thread); * = fastest at batch 1 within the val macro-F1 budget"
                         + ("" if entry["best"] else " (none within it)"))
    lines += baseline_lines(summary["baselines"])
    return "\n".join(lines)


def _add_train_args(parser: argparse.ArgumentParser, train: TrainConfig, limits: SandboxLimits) -> None:
    """Training and sandbox options; defaults come from the models (one source of truth)."""
    parser.add_argument("--max-epochs", type=int, default=train.max_epochs)
    parser.add_argument("--time-budget", type=float, default=train.time_budget_s,
                        help="seconds of training: no epoch starts past it and a running epoch stops at it")
    parser.add_argument("--train-batch-size", type=int, default=train.batch_size)
    parser.add_argument("--lr", type=float, default=train.learning_rate)
    parser.add_argument("--patience", type=int, default=train.patience)
    parser.add_argument("--train-seed", type=int, default=train.seed, help="seed of weight init and batch order")
    parser.add_argument("--max-train-pairs", type=int, help="subsample train (smoke runs)")
    parser.add_argument("--latency-repeats", type=int, default=train.latency_repeats, help="timed runs per latency figure")
    parser.add_argument("--timeout", type=float, default=limits.timeout_s, help="hard wall-clock limit of the sandbox (s)")
    parser.add_argument("--memory-mb", type=int, default=limits.memory_mb)
    parser.add_argument("--threads", type=int, default=limits.threads)


def _train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        max_epochs=args.max_epochs, time_budget_s=args.time_budget, batch_size=args.train_batch_size,
        learning_rate=args.lr, patience=args.patience, seed=args.train_seed, max_train_pairs=args.max_train_pairs,
        latency_repeats=args.latency_repeats,
    )


def _limits(args: argparse.Namespace) -> SandboxLimits:
    return SandboxLimits(timeout_s=args.timeout, memory_mb=args.memory_mb, threads=args.threads)


def _add_evolve_parser(sub: Any) -> None:
    from flows.evolve import EvolveParams

    evolve = sub.add_parser("evolve", help="evolve candidate programs from the seeds (flow evolve)")
    _add_evolve_args(evolve)
    evolve.add_argument("--compress-front", choices=["off", "subflow", "deployment"], default=EvolveParams().compress.mode,
                        help="compress the final Pareto front: here (subflow) or via the compress deployment")
    evolve.set_defaults(handler=_run_evolve, formatter=format_evolve_summary)


def _add_pipeline_parser(sub: Any) -> None:
    pipeline = sub.add_parser("pipeline", help="data, optional synthesis, evolve, compress the top K, report.html (flow pipeline)")
    _add_evolve_args(pipeline)
    pipeline.add_argument("--synthesize", action="store_true",
                          help="run `synth` on the shared synthetic-seed files first and evolve on the augmented train set")
    pipeline.add_argument("--compress-top", type=int, default=1, help="compress the K best candidates (0: skip)")
    _add_compress_config_args(pipeline, prefix="compress-")
    pipeline.set_defaults(handler=_run_pipeline, formatter=format_pipeline_summary)


def _add_evolve_args(evolve: argparse.ArgumentParser) -> None:
    """Options of ``evolve`` (also those of ``pipeline``); defaults come from EvolveParams."""
    from flows.evolve import EvolveParams

    defaults = EvolveParams()
    op, sel, llm = defaults.operator, defaults.selection, defaults.operator.llm
    evolve.add_argument("--generations", type=int, default=defaults.generations)
    evolve.add_argument("--children", type=int, default=defaults.children, help="children per generation")
    evolve.add_argument("--seed", type=int, default=defaults.seed, help="seed of parent draws and operator choices")
    evolve.add_argument("--operator", choices=["auto", "llm", "offline"], default=op.kind,
                        help="auto: the LLM when an endpoint is configured, else the offline AST operator")
    evolve.add_argument("--k", type=int, default=sel.parents_k, help="parents per crossover prompt")
    evolve.add_argument("--top-p", type=int, default=sel.top_p, help="parents are drawn from the best p")
    evolve.add_argument("--crossover-rate", type=float, default=sel.crossover_rate)
    evolve.add_argument("--fitness", choices=["pareto", "evoprompting"], default=sel.fitness)
    evolve.add_argument("--error-threshold", type=float, default=sel.error_threshold,
                        help="val error (1 - macro-F1) at or above which a candidate never becomes a parent")
    evolve.add_argument("--temperatures", type=float, nargs="+", default=op.temperatures)
    _add_llm_args(evolve, llm)
    evolve.add_argument("--seed-folder", help="folder of seed programs (*.py); default: the built-in library")
    evolve.add_argument("--prelude", help="static helper code prepended to every program")
    evolve.add_argument("--max-parallel", type=int, default=defaults.max_parallel, help="trainings at once")
    _add_runner_args(evolve)
    _add_train_args(evolve, defaults.train, defaults.limits)
    _add_data_args(evolve)
    _add_storage_args(evolve)


def _add_runner_args(parser: argparse.ArgumentParser) -> None:
    """The task runner of candidate training."""
    parser.add_argument("--runner", choices=["thread", "process", "dask", "ray"], default="thread",
                        help="Prefect task runner for candidate training")
    parser.add_argument("--runner-address", help="dask scheduler (tcp://host:8786) or ray address; empty: a local cluster")
    parser.add_argument("--local-workers", type=int, help="workers of a local Dask cluster / process pool (default: --max-parallel)")


def _runner_config(args: argparse.Namespace):
    from flows.runners import RunnerConfig

    return RunnerConfig(kind=args.runner, address=args.runner_address, local_workers=args.local_workers)


def _add_llm_args(parser: argparse.ArgumentParser, llm: Any) -> None:
    """Endpoint, retries, prices and budget of the shared LLM client (evolve and synth)."""
    parser.add_argument("--llm-base-url", help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL)")
    parser.add_argument("--llm-model", default=llm.model)
    parser.add_argument("--llm-api-key-env", default=llm.api_key_env,
                        help="NAME of the environment variable that holds the API key (the key is never a parameter)")
    parser.add_argument("--llm-timeout", type=float, default=llm.timeout_s)
    parser.add_argument("--llm-max-retries", type=int, default=llm.max_retries)
    parser.add_argument("--price-prompt", type=float, default=llm.price_prompt_per_1k, help="USD per 1K prompt tokens")
    parser.add_argument("--price-completion", type=float, default=llm.price_completion_per_1k, help="USD per 1K completion tokens")
    parser.add_argument("--llm-budget-usd", type=float, help="stop making LLM requests once this much was spent")
    parser.add_argument("--llm-budget-tokens", type=int, help="stop making LLM requests once this many tokens were used")


def _llm_config(args: argparse.Namespace):
    from evoformer.llm import LLMConfig

    return LLMConfig(
        base_url=args.llm_base_url, model=args.llm_model, api_key_env=args.llm_api_key_env, timeout_s=args.llm_timeout, max_retries=args.llm_max_retries,
        price_prompt_per_1k=args.price_prompt, price_completion_per_1k=args.price_completion,
        budget_usd=args.llm_budget_usd, budget_tokens=args.llm_budget_tokens,
    )


def _add_synth_parser(sub: Any) -> None:
    from flows.synthesize import SynthesizeParams

    defaults = SynthesizeParams()
    gen, gates = defaults.generation, defaults.gates
    synth = sub.add_parser("synth", help="import / generate synthetic examples, gate them, write an augmented train set (flow synthesize)")
    synth.add_argument("--from-file", action="append", default=[], metavar="PATH",
                       help="synthetic file or folder to import (repeatable); default without --generate: ../shared/data/synthetic-seed")
    synth.add_argument("--label", help="label for every imported row (else the row's, else the file name's)")
    synth.add_argument("--no-label-from-filename", action="store_true", help="rows without a label are rejected")
    synth.add_argument("--generator", help="generator model name of imported rows (default: the file's folder name)")
    synth.add_argument("--generate", type=int, default=gen.per_label, metavar="N", help="examples to generate per label with the LLM")
    synth.add_argument("--gen-labels", nargs="+", default=gen.labels, help="labels to generate")
    synth.add_argument("--examples-per-request", type=int, default=gen.examples_per_request)
    synth.add_argument("--few-shot", type=int, default=gen.few_shot, help="train examples shown per prompt")
    synth.add_argument("--temperature", type=float, default=gen.temperature)
    synth.add_argument("--gen-seed", type=int, default=gen.seed)
    _add_llm_args(synth, gen.llm)
    synth.add_argument("--near-dup", type=float, default=gates.near_duplicate_threshold, help="near-duplicate cosine threshold")
    synth.add_argument("--decontam", type=float, default=gates.decontamination_threshold, help="decontamination cosine threshold")
    synth.add_argument("--verify", choices=["none", "classifier", "llm"], default=gates.verify)
    synth.add_argument("--verify-action", choices=["report", "filter"], default=gates.verify_action)
    synth.add_argument("--balance", choices=["none", "fill_minority", "equal", "match_train"], default=gates.balance.mode)
    synth.add_argument("--max-fraction", type=float, help="cap on synthetic pairs as a fraction of real train")
    _add_data_args(synth)
    _add_storage_args(synth)
    synth.set_defaults(handler=_run_synth, formatter=format_synth_summary)


def _run_synth(args: argparse.Namespace) -> dict[str, Any]:
    from evoformer.synthetic.balance import BalanceConfig
    from evoformer.synthetic.gates import GateConfig
    from evoformer.synthetic.generator import GenerationConfig
    from evoformer.synthetic.importer import ImportConfig
    from flows.synthesize import SynthesizeParams, synthesize

    params = SynthesizeParams(
        data=prepare_data_params(args),
        imports=ImportConfig(paths=args.from_file, label=args.label, label_from_filename=not args.no_label_from_filename,
                             generator=args.generator),
        generation=GenerationConfig(per_label=args.generate, labels=args.gen_labels, examples_per_request=args.examples_per_request,
                                    few_shot=args.few_shot, temperature=args.temperature, seed=args.gen_seed, llm=_llm_config(args)),
        gates=GateConfig(near_duplicate_threshold=args.near_dup, decontamination_threshold=args.decontam, verify=args.verify,
                         verify_action=args.verify_action, balance=BalanceConfig(mode=args.balance, max_fraction_of_train=args.max_fraction)),
    )
    return synthesize(params)


def format_synth_summary(summary: dict[str, Any]) -> str:
    """Gate counts, imported files, label agreement and where the augmented set is."""
    from evoformer.synthetic.report import file_rows, gate_rows

    lines = [f"run {summary['run_id']}  ->  {summary['run_dir']}", "", "gate                 input   kept  dropped  reasons"]
    for r in gate_rows(summary):
        lines.append(f"{r['gate']:<19} {r['input']:>6} {r['kept']:>6} {r['dropped']:>8}  {r['reasons']}")
    files = file_rows(summary)
    if files:
        lines += ["", "file                              generator   rows  examples  rejected  label from"]
        lines += [f"{r['file']:<33} {r['generator']:<10} {r['rows']:>5} {r['examples']:>9} {r['rejected']:>9}  {r['label_from']}" for r in files]
    gen = summary.get("generation")
    if gen:
        lines.append(f"generation: {gen['requests']} requests ({gen['failed_requests']} failed), {gen['examples']} examples, "
                     f"{gen['rejected']} items rejected" + (f"; stopped: {gen['stopped']}" if gen["stopped"] else ""))
    v = summary.get("label_verification")
    if v:
        lines.append(f"label verification ({v['verifier']}): agreement {v['agreement']}, kappa {v['cohen_kappa']}, "
                     f"{v['checked']} checked" + (f"; the classifier on real val: {v['reference']}" if v.get("reference") else ""))
    lines += ["", f"kept {summary['kept']} synthetic pairs ({summary['synthetic_fraction_of_train']:.1%} of real train): {summary['kept_labels']}",
              f"augmented set {summary['augmented']['version']}: {summary['augmented']['path']}",
              f"report: {summary['files']['report.json']}"]
    return "\n".join(lines)


def prepare_data_params(args: argparse.Namespace):
    """Translate CLI arguments into the flow's parameter model."""
    from evoformer.baselines import BaselineConfig
    from evoformer.data import DataSourceConfig, SplitConfig
    from evoformer.features import EncoderConfig
    from evoformer.runs import StorageConfig
    from flows.data import PrepareDataParams

    storage = {k: v for k, v in {"runs_dir": args.runs_dir, "cache_dir": args.cache_dir, "run_id": args.run_id}.items() if v}
    train, val, test = args.ratios
    return PrepareDataParams(
        data=DataSourceConfig(
            source=args.source,
            format=args.format,
            claim_column=args.claim_column,
            evidence_column=args.evidence_column,
            label_column=args.label_column,
            claim_id_column=args.claim_id_column,
            on_bad_rows="skip" if args.skip_bad_rows else "error",
        ),
        split=SplitConfig(train=train, val=val, test=test, seed=args.split_seed),
        encoder=EncoderConfig(
            encoder=args.encoder, max_length=args.max_length, layers=args.encoder_layers, batch_size=args.batch_size
        ),
        baselines=BaselineConfig(),
        storage=StorageConfig(**storage),
        progress=not args.no_progress,
        augmented=args.augmented,
    )


def _run_data(args: argparse.Namespace) -> dict[str, Any]:
    from flows.data import prepare_data

    return prepare_data(prepare_data_params(args))


def _run_train(args: argparse.Namespace) -> dict[str, Any]:
    from flows.train import TrainProgramParams, train_program

    params = TrainProgramParams(
        program_path=args.program,
        prelude_path=args.prelude,
        data=prepare_data_params(args),
        train=_train_config(args),
        limits=_limits(args),
    )
    return train_program(params)


def evolve_params(args: argparse.Namespace):
    """Translate ``evolve`` arguments into the flow's parameter model (also used by the GUI and ``pipeline``)."""
    from evoformer.evolution.operators import OperatorConfig
    from evoformer.evolution.population import SelectionConfig
    from flows.compress import CompressTrigger
    from flows.evolve import EvolveParams

    return EvolveParams(
        generations=args.generations, children=args.children, seed=args.seed,
        operator=OperatorConfig(
            kind=args.operator, temperatures=args.temperatures,
            llm=_llm_config(args),
        ),
        selection=SelectionConfig(fitness=args.fitness, error_threshold=args.error_threshold, top_p=args.top_p,
                                  parents_k=args.k, crossover_rate=args.crossover_rate),
        seed_folder=args.seed_folder, prelude_path=args.prelude, data=prepare_data_params(args),
        train=_train_config(args), limits=_limits(args), max_parallel=args.max_parallel, runner=_runner_config(args),
        compress=CompressTrigger(mode=getattr(args, "compress_front", "off")),
    )


def _run_evolve(args: argparse.Namespace) -> dict[str, Any]:
    from flows.evolve import evolve

    return evolve(evolve_params(args))


def _run_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    from flows.pipeline import CompressionStep, PipelineParams, SynthesisStep, pipeline

    params = PipelineParams(evolve=evolve_params(args), synthesis=SynthesisStep(enabled=args.synthesize),
                            compression=CompressionStep(top_k=args.compress_top, config=_compress_config(args, prefix="compress-")))
    return pipeline(params)


def format_pipeline_summary(summary: dict[str, Any]) -> str:
    """The data and baseline tables, the evolve summary, the compression tables, and where the report is."""
    parts = [format_data_summary(summary["data"]), format_evolve_summary(summary["evolve"])]
    if summary["compress"]:
        parts.append(format_compress_summary(summary["compress"]))
    parts.append(f"report: {summary['report']}")
    return "\n\n".join(parts)


def format_evolve_summary(summary: dict[str, Any]) -> str:
    """Counts, best candidates and the final Pareto front next to the baselines."""
    c = summary["candidates"]
    lines = [
        f"run {summary['run_id']}  ->  {summary['run_dir']}",
        f"operator: {summary['operator_reason']}",
        f"generations: {summary['generations']}" + (f"  (stopped: {summary['stopped']})" if summary["stopped"] else ""),
        f"candidates: {c['total']} total, {c['ok']} ok, {c['rejected']} rejected before training, {c['failed']} failed in training",
        "",
        "                 id                      params  val_macro_f1  test_macro_f1",
    ]
    for label, entry in (("best", summary["best"]), ("best seed", summary["best_seed"]), ("best evolved", summary["best_evolved"])):
        if entry:
            lines.append(f"{label:<16} {entry['id']:<22} {entry['params']:>9,} {entry['val_macro_f1']:>13.4f} {entry['test_macro_f1']:>14.4f}")
    lines += ["", "final Pareto front (val macro-F1 against params):"]
    for entry in summary["front"]:
        lines.append(f"  {entry['id']:<22} {entry['params']:>9,} {entry['val_macro_f1']:>13.4f} {entry['test_macro_f1']:>14.4f}")
    lines += baseline_lines(summary["baselines"])
    llm = summary["llm"]
    if summary["operator"] == "llm":
        lines.append(f"LLM: {llm['requests']} requests, {llm['retries']} retries, {llm['cache_hits']} cached, "
                     f"{llm['tokens']:,} tokens, ${llm['cost']:.4f}")
    lines.append(f"lineage: {summary['lineage']}   Pareto plot: {summary['pareto_plot']}")
    return "\n".join(lines)


def format_train_summary(summary: dict[str, Any]) -> str:
    """One candidate's outcome next to the baselines."""
    lines = [f"{summary['name']}: {summary['status']}" + (f" ({summary['reason']})" if summary["reason"] else "")]
    m = summary["metrics"]
    if m:
        lines.append(f"params {m['params']:,}  epochs {m['epochs']} (best {m['best_epoch']})  train {m['train_seconds']:.1f} s")
        lines.append(f"latency ms/example: batch1 {m['latency_ms']['batch1']:.3f}  batch64 {m['latency_ms']['batch64']:.3f}")
        lines.append("model      split  macro_f1  accuracy")
        for split in ("val", "test"):
            lines.append(f"candidate  {split:<5} {m[split]['macro_f1']:>9.4f} {m[split]['accuracy']:>9.4f}")
    elif summary.get("stderr_tail"):
        lines += ["stderr (tail):", summary["stderr_tail"][-1500:]]
    for name, scores in summary["baselines"].items():
        lines.append(f"{name:<10} val {scores['val']:.4f}  test {scores['test']:.4f}  (macro-F1)")
    lines.append(f"candidate folder: {summary['folder']}")
    return "\n".join(lines)


def format_data_summary(summary: dict[str, Any]) -> str:
    """Human-readable split and baseline tables (majority line always shown)."""
    lines = [f"run {summary['run_id']}  ->  {summary['run_dir']}", "", "split   pairs  claims  SUPPORTS  REFUTES  NOT_ENOUGH_INFO"]
    for name, s in summary["splits"].items():
        lab = s["labels"]
        lines.append(f"{name:<6} {s['pairs']:>6} {s['claims']:>7} {lab['SUPPORTS']:>9} {lab['REFUTES']:>8} {lab['NOT_ENOUGH_INFO']:>16}")
    lines += [f"claim overlap between splits: {summary['claim_overlap']}", ""]
    lines.append("baseline   split  macro_f1  weighted_f1  accuracy")
    for name, result in summary["baselines"].items():
        for split in ("val", "test"):
            m = result[split]
            lines.append(f"{name:<10} {split:<5} {m['macro_f1']:>9.4f} {m['weighted_f1']:>12.4f} {m['accuracy']:>9.4f}")
    lines += ["", f"features: {summary['features_path']} ({'reused from cache' if summary['features_cached'] else 'computed'})"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``evoformer`` console script."""
    args = build_parser().parse_args(argv)
    from evoformer.data import DataSourceError, MalformedRowError

    from evoformer.compression.evaluate import CompressionError
    from evoformer.llm import LLMError
    from flows.evolve import EvolutionError
    from flows.synthesize import SynthesisError

    try:
        summary = args.handler(args)
    except (DataSourceError, MalformedRowError, ValueError, LLMError, EvolutionError, CompressionError, SynthesisError) as exc:
        print(f"evoformer: error: {exc}", file=sys.stderr)
        return 2
    if args.command == "ui":
        return 0 if summary["status"] == "ok" else 1
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(args.formatter(summary))
    return 0 if summary.get("status", "ok") == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
