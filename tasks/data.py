"""Prefect tasks of the data flow: load, split, featurize (cached), baselines (cached), artifacts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from evoformer.baselines import BaselineConfig, BaselineResult, baseline_rows, run_baselines
from evoformer.data import DataSourceConfig, DataSplits, LoadedData, SplitConfig, load_pairs, make_splits
from evoformer.features import EncoderConfig, featurize_splits
from evoformer.features.featurize import planned_feature_folder
from evoformer.features.sentences import embed_sentences
from evoformer.features.store import MANIFEST
from evoformer.labels import LABELS
from evoformer.synthetic.augmented import AugmentedManifest, apply_augmented


@task(name="load-pairs", cache_policy=NO_CACHE)
def load_pairs_task(config: DataSourceConfig) -> LoadedData:
    """Load and validate every pair of the configured source."""
    return load_pairs(config)


@task(name="split-by-claim", cache_policy=NO_CACHE)
def split_task(loaded: LoadedData, config: SplitConfig) -> DataSplits:
    """Claim-level stratified splits; raises if any claim lands in two splits."""
    return make_splits(loaded.frame, config, loaded.report.source)


@task(name="apply-augmented-set", cache_policy=NO_CACHE)
def augment_task(splits: DataSplits, path: str) -> tuple[DataSplits, AugmentedManifest]:
    """Replace train with a verified augmented set (val/test must be the splits it was gated against)."""
    return apply_augmented(splits, path)


def _featurize_cache_key(_context: Any, parameters: dict[str, Any]) -> str | None:
    """Key = the feature folder's absolute path, which holds the content hash of splits, encoder,
    max_length and layers. No key (so the task runs) when that folder is gone."""
    folder = planned_feature_folder(
        Path(parameters["cache_dir"]), parameters["splits"].fingerprints, parameters["encoder"]
    ).resolve()
    if not (folder / MANIFEST).is_file():
        return None
    return "features:" + hashlib.sha256(str(folder).encode()).hexdigest()[:32]


@task(name="featurize", cache_key_fn=_featurize_cache_key, persist_result=True)
def featurize_task(splits: DataSplits, encoder: EncoderConfig, cache_dir: str, progress: bool = True) -> dict[str, Any]:
    """Encode all splits with the frozen encoder. Returns the feature folder's path (not tensors)
    and whether an existing folder was reused. Logs each split's progress every ~10% or 30 s."""
    logger = get_run_logger()
    result = featurize_splits(
        splits.frames, splits.fingerprints, encoder, cache_dir, progress=progress, log=logger.info
    )
    return {"path": str(result.path), "reused": result.reused}


@task(name="sentence-embeddings", cache_policy=NO_CACHE)
def sentences_task(splits: DataSplits, encoder: EncoderConfig, cache_dir: str) -> dict[str, Any]:
    """Separate claim and evidence embeddings (cached on disk by split fingerprints and encoder);
    returns the folder's path and whether it was reused. Logs the size, progress and time."""
    result = embed_sentences(splits.frames, splits.fingerprints, encoder, cache_dir, progress=get_run_logger().info)
    return {"path": str(result.path), "reused": result.reused}


_LOGREG_FIT = "warm-path-1"
"""How the C grid is fitted (see :func:`evoformer.baselines.logreg_baseline`): part of the cache key,
so results cached by an earlier fitting method are not reused as if they came from this one."""


def _baselines_cache_key(_context: Any, parameters: dict[str, Any]) -> str:
    payload = {
        "features": Path(parameters["features_path"]).name,
        "sentences": Path(parameters["sentences_path"]).name if parameters.get("sentences_path") else None,
        "fingerprints": parameters["splits"].fingerprints,
        "config": parameters["config"].model_dump(),
        "logreg": _LOGREG_FIT,
    }
    return "baselines:" + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


@task(name="baselines", cache_key_fn=_baselines_cache_key, persist_result=True)
def baselines_task(
    features_path: str, splits: DataSplits, config: BaselineConfig, sentences_path: str | None = None
) -> dict[str, BaselineResult]:
    """Majority and logistic-regression baselines; labels come from the splits held here. Logs one
    line per logistic-regression fit (feature set, C, val macro-F1, seconds) and the choice."""
    logger = get_run_logger()
    labels = {name: frame["label"].tolist() for name, frame in splits.frames.items()}
    results = run_baselines(features_path, labels, config, sentences_path, progress=logger.info)
    logger.info("logreg baseline: %s, val macro-F1 %.4f", results["logreg"].detail, results["logreg"].val.macro_f1)
    return results


@task(name="publish-data-artifacts", cache_policy=NO_CACHE)
def publish_data_artifacts(splits_summary: dict[str, dict[str, Any]], baselines: dict[str, BaselineResult]) -> None:
    """Two table artifacts: split sizes with label counts, and baseline metrics."""
    create_table_artifact(
        key="data-splits",
        table=[
            {
                "split": name,
                "pairs": s["pairs"],
                "claims": s["claims"],
                **{label: s["labels"][label] for label in LABELS},
            }
            for name, s in splits_summary.items()
        ],
        description="Claim-level splits: pairs, claims and label counts.",
    )
    create_table_artifact(
        key="data-baselines", table=baseline_rows(baselines), description="Baselines on val and test."
    )
