"""Flow ``synthesize``: import and/or generate synthetic examples, gate them against the real
claim-level splits, and write a versioned augmented training set with the report as artifacts."""

from __future__ import annotations

from collections import Counter
from typing import Any

from prefect import flow, get_run_logger

from evoformer.config.synthesize import SynthesisSettings, SynthesizeParams  # noqa: F401  (declared in evoformer/config)
from evoformer.data.sources import resolve_source
from evoformer.errors import UserError
from evoformer.layout import RunLayout
from evoformer.llm import UsageSnapshot, open_client
from evoformer.runs import open_run, update_summary
from evoformer.synthetic.augmented import build_augmented_train, write_augmented
from evoformer.synthetic.gates import schema_report
from evoformer.synthetic.importer import default_import_paths
from evoformer.synthetic.report import KEPT_FILE, REJECTED_FILE, SYNTHESIS_REPORT_FILE, write_report_files
from tasks.data import load_pairs_task, split_task
from tasks.synthetic import gates_task, generate_task, import_task, publish_synthetic_artifacts

SYNTHETIC_DIR = "synthetic"


class SynthesisError(UserError, RuntimeError):
    """Nothing to synthesize from, or no LLM for a step that needs one."""


def _import_paths(params: SynthesizeParams) -> list[str]:
    if params.imports.paths or params.generation.per_label > 0:
        return params.imports.paths
    paths = default_import_paths()
    if not paths:
        raise SynthesisError(
            "nothing to do: pass --from-file PATH, or --generate N with an LLM endpoint "
            "(the default synthetic-seed folder ../shared/data/synthetic-seed was not found)"
        )
    return paths


@flow(name="synthesize", log_prints=True)
def synthesize(params: SynthesizeParams = SynthesizeParams()) -> dict[str, Any]:
    """Import, generate, gate, write the augmented set and the report; return the summary."""
    logger = get_run_logger()
    if params.data.augmented:
        raise SynthesisError("synth gates against the real splits: data.augmented (--augmented) does not apply here")
    run_id, run_dir = open_run(params.data.storage)
    loaded = load_pairs_task(params.data.data)
    splits = split_task(loaded, params.data.split)
    paths = _import_paths(params)
    llm_needed = params.generation.per_label > 0 or params.gates.verify == "llm"
    if llm_needed and not params.generation.llm.is_configured():
        raise SynthesisError(
            "generation and the LLM judge need an endpoint: set --llm-base-url / $OPENAI_BASE_URL "
            "or $OPENAI_API_KEY (or import files with --from-file and verify with the classifier)"
        )
    client, ledger = open_client(params.generation.llm, RunLayout(run_dir).llm_dir) if llm_needed else (None, None)

    examples, rejections, rows, rejected = [], [], 0, 0
    imported = generated = None
    if paths:
        imported = import_task(params.imports.model_copy(update={"paths": paths}))
        examples += imported.examples
        rejections += [r for f in imported.report.files for r in f.rejections]
        rows, rejected = imported.report.rows_read, imported.report.rejected
        logger.info(
            "imported %d examples from %d file(s); %d rows rejected",
            imported.report.examples,
            len(imported.report.files),
            rejected,
        )
    try:
        if params.generation.per_label > 0:
            generated = generate_task(client, splits["train"], params.generation)
            examples += generated.examples
            rejections += generated.report.rejections
            rows += generated.report.items
            rejected += generated.report.rejected
            logger.info(
                "generated %d examples in %d requests (%d failed); %d items rejected",
                generated.report.examples,
                generated.report.requests,
                generated.report.failed_requests,
                generated.report.rejected,
            )
        schema = schema_report(rows, len(examples), rejections, rejected)
        outcome = gates_task(
            examples,
            schema,
            splits.frames,
            params.gates,
            params.data.encoder,
            params.data.storage.cache_dir,
            client if params.gates.verify == "llm" else None,
        )
    finally:
        if ledger is not None:
            ledger.save(RunLayout(run_dir).llm_usage)
        if client is not None:
            client.close()

    folder = run_dir / SYNTHETIC_DIR
    train = splits["train"]
    augmented = build_augmented_train(splits, outcome.kept, resolve_source(params.data.data.source))
    settings = {
        "gates": params.gates.model_dump(),
        "split": params.data.split.model_dump(),
        "encoder": params.data.encoder.model_dump(),
        "source": resolve_source(params.data.data.source),
    }
    aug_path, manifest = write_augmented(folder, augmented, splits.fingerprints, settings)
    usage = ledger.snapshot() if ledger is not None else UsageSnapshot()
    report: dict[str, Any] = {
        "run_id": run_id,
        "run_dir": str(run_dir.resolve()),
        "imports": imported.report.model_dump() if imported else None,
        "generation": generated.report.model_dump() if generated else None,
        "gates": [g.model_dump() for g in outcome.reports],
        "label_verification": outcome.agreement.model_dump() if outcome.agreement else None,
        "kept": len(outcome.kept),
        "kept_labels": dict(Counter(outcome.kept["label"])),
        "kept_sources": dict(Counter(outcome.kept["source"])),
        "rejected": len(outcome.rejected) + schema.dropped,
        "real_train_pairs": len(train),
        "synthetic_fraction_of_train": len(outcome.kept) / max(len(train), 1),
        "split_fingerprints": splits.fingerprints,
        "augmented": {"path": str(aug_path.resolve()), "version": manifest.version, "pairs": len(augmented)},
        "files": {name: str((folder / name).resolve()) for name in (KEPT_FILE, REJECTED_FILE, SYNTHESIS_REPORT_FILE)},
        "llm": usage.model_dump() if llm_needed else None,
    }
    write_report_files(folder, outcome, report)
    publish_synthetic_artifacts(report)
    update_summary(run_dir, {"synthetic": report})
    logger.info("kept %d synthetic pairs; augmented set %s", len(outcome.kept), aug_path)
    return report
