"""Every seed trains in the sandbox on a fixture of real data and beats chance."""

from __future__ import annotations

import numpy as np
import pytest

from evoformer.baselines import majority_baseline
from evoformer.candidates.evaluate import evaluate_candidate
from evoformer.candidates.job import TrainConfig
from evoformer.candidates.program import CandidateProgram
from evoformer.sandbox.limits import SandboxLimits
from evoformer.seeds import seed_files

pytestmark = pytest.mark.integration  # trains in the sandbox, runs flows or starts servers


@pytest.mark.parametrize("seed_file", seed_files(), ids=lambda p: p.stem)
def test_seed_trains_and_beats_chance(seed_file, medium_features, tmp_path) -> None:
    features, labels = medium_features
    config = TrainConfig(max_epochs=4, patience=2, latency_repeats=3)
    result = evaluate_candidate(
        CandidateProgram.from_file(seed_file), features.path, labels, tmp_path / "c", config, SandboxLimits()
    )
    assert result.status == "ok", f"{result.reason}\n{result.stderr_tail}"
    m = result.metrics
    majority = majority_baseline(labels["train"], labels["val"], labels["test"])
    # Chance: the majority class (macro-F1 ~0.26 here); uniform guessing scores about 0.3.
    mean_f1 = (m.val.macro_f1 + m.test.macro_f1) / 2
    assert mean_f1 > max(0.32, (majority.val.macro_f1 + majority.test.macro_f1) / 2 + 0.05), (
        m.val.macro_f1,
        m.test.macro_f1,
    )
    assert m.params > 1000 and m.latency_ms["batch1"] > 0 and 1 <= m.epochs <= 4
    assert np.isfinite(m.train_seconds)
