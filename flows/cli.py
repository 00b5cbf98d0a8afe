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
    parser.add_argument("--batch-size", type=int, default=encoder.batch_size)
    parser.add_argument("--no-progress", action="store_true")


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
    train_defaults, limit_defaults = TrainConfig(), SandboxLimits()  # one source of defaults: the models
    train.add_argument("--max-epochs", type=int, default=train_defaults.max_epochs)
    train.add_argument("--time-budget", type=float, default=train_defaults.time_budget_s,
                       help="seconds of training: no epoch starts past it and a running epoch stops at it")
    train.add_argument("--train-batch-size", type=int, default=train_defaults.batch_size)
    train.add_argument("--lr", type=float, default=train_defaults.learning_rate)
    train.add_argument("--patience", type=int, default=train_defaults.patience)
    train.add_argument("--seed", type=int, default=train_defaults.seed)
    train.add_argument("--max-train-pairs", type=int, help="subsample train (smoke runs)")
    train.add_argument("--timeout", type=float, default=limit_defaults.timeout_s, help="hard wall-clock limit of the sandbox (s)")
    train.add_argument("--memory-mb", type=int, default=limit_defaults.memory_mb)
    train.add_argument("--threads", type=int, default=limit_defaults.threads)
    _add_data_args(train)
    _add_storage_args(train)
    train.set_defaults(handler=_run_train, formatter=format_train_summary)
    return parser


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
        encoder=EncoderConfig(encoder=args.encoder, max_length=args.max_length, batch_size=args.batch_size),
        baselines=BaselineConfig(),
        storage=StorageConfig(**storage),
        progress=not args.no_progress,
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
        train=TrainConfig(
            max_epochs=args.max_epochs, time_budget_s=args.time_budget, batch_size=args.train_batch_size,
            learning_rate=args.lr, patience=args.patience, seed=args.seed, max_train_pairs=args.max_train_pairs,
        ),
        limits=SandboxLimits(timeout_s=args.timeout, memory_mb=args.memory_mb, threads=args.threads),
    )
    return train_program(params)


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

    try:
        summary = args.handler(args)
    except (DataSourceError, MalformedRowError, ValueError) as exc:
        print(f"evoformer: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(args.formatter(summary))
    return 0 if summary.get("status", "ok") == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
