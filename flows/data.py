"""Flow ``prepare_data``: load, split by claim, featurize (cached), baselines, artifacts, summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from evoformer.config.data import PrepareDataParams  # noqa: F401  (declared in evoformer/config)
from evoformer.layout import RunLayout
from evoformer.runs import open_run, update_summary
from evoformer.summaries import AugmentedInfo, BaselineSummary, DataSummary
from tasks.data import (
    augment_task,
    baselines_task,
    featurize_task,
    load_pairs_task,
    publish_data_artifacts,
    sentences_task,
    split_task,
)


@flow(name="prepare_data", log_prints=True)
def prepare_data(params: PrepareDataParams = PrepareDataParams()) -> dict[str, Any]:
    """Build the claim-level splits, frozen features and baselines; return the run summary."""
    logger = get_run_logger()
    run_id, run_dir = open_run(params.storage)
    loaded = load_pairs_task(params.data)
    report = loaded.report
    logger.info(
        "loaded %d pairs from %s (%s); skipped %d bad rows",
        report.pairs,
        report.source,
        report.kind,
        report.rows_skipped,
    )

    splits = split_task(loaded, params.split)
    augmented = None
    if params.augmented:
        splits, augmented = augment_task(splits, params.augmented)
        logger.info("train augmented with %d synthetic pairs (set %s)", augmented.synthetic_pairs, augmented.version)
    layout = RunLayout(run_dir)
    layout.data_dir.mkdir(exist_ok=True)
    for name, frame in splits.frames.items():
        frame.to_parquet(layout.split_table(name), index=False)

    features_state = featurize_task(
        splits, params.encoder, params.storage.cache_dir, params.progress, return_state=True
    )
    features = features_state.result()
    features_path = features["path"]
    sentences: dict[str, Any] = {"path": None, "reused": False}
    if params.baselines.needs_sentences():  # a second encoding pass of every sentence: only when a baseline uses it
        sentences = sentences_task(splits, params.encoder, params.storage.cache_dir)
    baselines = baselines_task(features_path, splits, params.baselines, sentences["path"])
    split_summary = splits.summary()
    publish_data_artifacts(split_summary, baselines)

    summary = DataSummary(
        run_id=run_id,
        run_dir=str(run_dir.resolve()),
        source=report,
        splits=split_summary,
        claim_overlap=splits.claim_overlap,
        fingerprints=splits.fingerprints,
        split_config=params.split.model_dump(mode="json"),
        encoder=params.encoder.model_dump(mode="json"),
        augmented=None
        if augmented is None
        else AugmentedInfo(
            path=str(Path(params.augmented).resolve()),
            version=augmented.version,
            synthetic_pairs=augmented.synthetic_pairs,
            synthetic_labels=augmented.synthetic_labels,
        ),
        features_path=str(Path(features_path).resolve()),
        features_cached=features_state.name == "Cached" or features["reused"],
        sentences_path=str(Path(sentences["path"]).resolve()) if sentences["path"] else "",
        sentences_cached=sentences["reused"],
        baselines={
            name: BaselineSummary(val=result.val, test=result.test, detail=result.detail)
            for name, result in baselines.items()
        },
    ).as_dict()
    update_summary(layout, summary)
    logger.info("run folder: %s", run_dir)
    return summary
