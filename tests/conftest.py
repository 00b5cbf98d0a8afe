"""Shared fixtures: a small real Climate-FEVER subset, its splits and cached features."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from llm_server import scripted_llm_server  # noqa: F401  (fixture: loopback OpenAI-compatible server)

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# A fresh Prefect home per session: results persisted by earlier sessions must not leak in.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="evoformer-prefect-home-")
os.environ.pop("PREFECT_API_URL", None)
# Artifacts name files by path unless a test serves the runs folder itself.
os.environ.pop("EVOFORMER_FILES_URL", None)

SHARED_CLIMATE_FEVER = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "climate-fever" / "climate-fever.jsonl"
)
SMALL_CLAIMS = 80  # 400 pairs: enough for every split to hold every label
MEDIUM_CLAIMS = 240  # 1,200 pairs: enough for a trained seed to beat chance measurably


@pytest.fixture(scope="session")
def shared_climate_fever() -> Path:
    if not SHARED_CLIMATE_FEVER.is_file():
        pytest.skip(f"shared data not found at {SHARED_CLIMATE_FEVER}")
    return SHARED_CLIMATE_FEVER


@pytest.fixture(scope="session")
def small_climate_fever(shared_climate_fever: Path, tmp_path_factory) -> Path:
    """The first claims of the real release, in the release's own format."""
    path = tmp_path_factory.mktemp("data") / "climate-fever-small.jsonl"
    with shared_climate_fever.open() as src, path.open("w") as dst:
        for _, line in zip(range(SMALL_CLAIMS), src, strict=False):
            dst.write(line)
    return path


@pytest.fixture(scope="session")
def medium_features(shared_climate_fever: Path, feature_cache_dir: Path, tmp_path_factory):
    """Features and label ids of the first claims of the release (1,200 pairs)."""
    from evoformer.baselines import label_ids
    from evoformer.data import DataSourceConfig, load_pairs, make_splits
    from evoformer.features import EncoderConfig, featurize_splits

    path = tmp_path_factory.mktemp("data") / "climate-fever-medium.jsonl"
    with shared_climate_fever.open() as src, path.open("w") as dst:
        for _, line in zip(range(MEDIUM_CLAIMS), src, strict=False):
            dst.write(line)
    splits = make_splits(load_pairs(DataSourceConfig(source=str(path))).frame)
    features = featurize_splits(splits.frames, splits.fingerprints, EncoderConfig(), feature_cache_dir, progress=False)
    return features, {name: label_ids(frame["label"]) for name, frame in splits.frames.items()}


@pytest.fixture(scope="session")
def small_splits(small_climate_fever: Path):
    from evoformer.data import DataSourceConfig, load_pairs, make_splits

    return make_splits(load_pairs(DataSourceConfig(source=str(small_climate_fever))).frame)


@pytest.fixture(scope="session")
def feature_cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def small_features(small_splits, feature_cache_dir: Path):
    from evoformer.features import EncoderConfig, featurize_splits

    return featurize_splits(
        small_splits.frames, small_splits.fingerprints, EncoderConfig(), feature_cache_dir, progress=False
    )


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server (SQLite) for all flow tests of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


LINEAR_MODEL = """
import torch
import torch.nn as nn

class M(nn.Module):
    def __init__(self, d, c):
        super().__init__()
        self.lin = nn.Linear(d, c)
    def forward(self, x, mask):
        return self.lin(x[:, 0])
"""


def candidate_source(body: str) -> str:
    """A program whose ``build_model`` runs ``body`` (indented), with the linear model ``M`` in scope."""
    import textwrap

    return (
        LINEAR_MODEL + "\ndef build_model(input_dim, num_classes):\n" + textwrap.indent(textwrap.dedent(body), "    ")
    )


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def small_sentences(small_splits, feature_cache_dir: Path):
    from evoformer.features import EncoderConfig
    from evoformer.features.sentences import embed_sentences

    return embed_sentences(small_splits.frames, small_splits.fingerprints, EncoderConfig(), feature_cache_dir)


# Fixtures that encode data, run Prefect or serve an LLM: a test that asks for one is an integration
# test wherever it lives, so the fast lane (`make test-unit`) never picks up a slow one by accident.
HEAVY_FIXTURES = frozenset(
    {"prefect_harness", "small_features", "medium_features", "small_sentences", "small_splits", "feature_cache_dir"}
)


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
