"""The smoke check: build, one forward and one backward pass in the sandbox, in seconds, with the
error a model can repair from."""

from __future__ import annotations

import time

import pytest
from conftest import LINEAR_MODEL, candidate_source

from evoformer.candidates.smoke import SmokeCheck
from evoformer.candidates.static_check import StaticCheckConfig
from evoformer.sandbox.limits import SandboxLimits

EMBEDDING_ON_STATES = """
import torch
import torch.nn as nn

class M(nn.Module):
    def __init__(self, d, c):
        super().__init__()
        self.emb = nn.Embedding(1000, 32)
        self.out = nn.Linear(32, c)
    def forward(self, x, mask):
        return self.out(self.emb(x).mean(dim=(1, 2)))

def build_model(input_dim, num_classes):
    return M(input_dim, num_classes)
"""

NO_GRADIENT = """
import torch
import torch.nn as nn

class M(nn.Module):
    def __init__(self, d, c):
        super().__init__()
        self.lin = nn.Linear(d, c)
        self.c = c
    def forward(self, x, mask):
        return torch.zeros(x.shape[0], self.c) + x.sum() * 0.0

def build_model(input_dim, num_classes):
    return M(input_dim, num_classes)
"""


@pytest.fixture()
def check(small_features, tmp_path) -> SmokeCheck:
    return SmokeCheck("", StaticCheckConfig(), str(small_features.path), SandboxLimits(threads=1), tmp_path / "smoke")


def test_a_working_program_passes_in_seconds(check) -> None:
    started = time.perf_counter()
    assert check(candidate_source("return M(input_dim, num_classes)")) is None
    assert time.perf_counter() - started < 60


def test_errors_name_the_failure_for_the_model_to_repair(check) -> None:
    error = check(EMBEDDING_ON_STATES)
    assert error is not None and error.startswith("runtime_error: forward failed")
    assert 'File "program.py", line 11' in error and "self.emb(x)" in error  # where, in the program
    assert "site-packages" not in error
    error = check(NO_GRADIENT)
    assert error is not None and error.startswith("runtime_error: training step failed") and "grad" in error
    missing = check(LINEAR_MODEL)  # no build_model
    assert missing is not None and "build_model" in missing
    broken = check("def build_model(input_dim, num_classes):\n    return (\n")
    assert broken is not None and broken.startswith("rejected by the static check")
    assert sorted(p.name for p in check.folder.iterdir()) == ["0", "1"]  # static rejections ran nothing


POSITION_TABLE = """
import torch
import torch.nn as nn

class M(nn.Module):
    def __init__(self, d, c):
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(1, {positions}, d))  # too short for the longest inputs
        self.out = nn.Linear(d, c)
    def forward(self, x, mask):
        h = x + self.pos[:, : x.shape[1]]
        return self.out((h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True))

def build_model(input_dim, num_classes):
    return M(input_dim, num_classes)
"""


def test_a_model_that_breaks_on_longer_inputs_fails_the_smoke_check(check, small_features) -> None:
    from evoformer.features.store import load_split_features

    lengths = load_split_features(small_features.path, "train").lengths
    first = int(lengths[:8].max())  # the probe and the training step see at most this length
    assert int(lengths.max()) > first, "the fixture's train split needs a longer example than its first 8"
    assert check(POSITION_TABLE.format(positions=int(lengths.max()))) is None
    error = check(POSITION_TABLE.format(positions=first))
    assert error is not None
    assert error.startswith(f"runtime_error: forward failed on 4 examples padded to {int(lengths.max())} tokens")
    assert "self.pos[:, : x.shape[1]]" in error  # the program's own line, for the model to repair


WIDTH_MISMATCH = """
import torch
import torch.nn as nn

class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(d, 64), nn.GELU())
    def forward(self, x):
        return self.proj(x)

class M(nn.Module):
    def __init__(self, d, c):
        super().__init__()
        self.block = Block(d)
        self.head = nn.Linear(128, c)  # the block gives 64
    def forward(self, x, mask):
        return self.head(self.block(x).mean(dim=1))

def build_model(input_dim, num_classes):
    return M(input_dim, num_classes)
"""


def test_a_width_mismatch_names_the_layer_and_the_shape_it_was_given(check) -> None:
    error = check(WIDTH_MISMATCH)
    assert error is not None and error.startswith("runtime_error: forward failed")
    # The layer that raised, its settings and its input's shape: what the model has to change.
    assert "inside `head` (Linear(in_features=128, out_features=3, bias=True)), which was given [2, 64]" in error
    assert "self.head(self.block(x).mean(dim=1))" in error  # and the program's own line, as before
