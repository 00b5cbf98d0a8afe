"""Near-copies: the structure hash ignores docstrings, comments and the names a program binds, and
check_children records a child that repeats a known program that way as a duplicate, untrained."""

from __future__ import annotations

import ast
import re

import pytest

from evoformer.candidates.canonical import canonical_tree
from evoformer.candidates.job import Status
from evoformer.candidates.program import CandidateProgram
from evoformer.candidates.static_check import StaticCheckConfig
from evoformer.evolution.children import check_children, seed_proposal
from evoformer.evolution.operators import ChildPlan, Proposal
from evoformer.layout import RunLayout
from evoformer.seeds import SEED_DIR, seed_files

SEED = (SEED_DIR / "conv_text.py").read_text()
PRELUDE = "def scaled(v, factor=2.0):\n    return v * factor\n"

# Every binding kind the seed has: module-level functions, a class, parameters, locals (in one
# function only: h in forward, m in masked_mean), comprehension targets, attributes stored on self.
RENAMES = {
    "ConvText": "TextConvNet",
    "segments": "split_segments",
    "masked_mean": "avg_over_mask",
    "pair_features": "pairwise",
    "channels": "n_channels",
    "hidden": "width",
    "x": "tokens",
    "mask": "pad_mask",
    "lengths": "lens",
    "sep": "separator",
    "h": "feats",
    "k": "kw",
    "conv": "layer",
    "peaks": "pooled",
    "drop_in": "input_dropout",
    "convs": "conv_stack",
    "conv_proj": "project_convs",
    "head": "classifier",
}


def near_copy(source: str) -> str:
    """``source`` with other names, another module docstring, a class docstring and comments."""
    for old, new in RENAMES.items():
        source = re.sub(rf"\b{old}\b", new, source)
    source = re.sub(r'^""".*?"""', '"""A text CNN, rewritten for clarity."""', source, flags=re.S)
    source = source.replace('"""``[u, v, |u - v|, u * v]``', '"""Pair features of the two segments:\n    ``[u, v]``')
    source = source.replace(
        "class TextConvNet(nn.Module):\n", 'class TextConvNet(nn.Module):\n    """Conv text model."""\n\n'
    )
    return source.replace("super().__init__()", "super().__init__()  # initialise nn.Module")


def structure(source: str, prelude: str = "") -> str:
    return CandidateProgram(name="p", source=source, prelude=prelude).structure_hash()


def test_a_renamed_redocumented_copy_of_a_seed_has_its_structure_hash() -> None:
    copy = near_copy(SEED)
    assert "TextConvNet" in copy and "self.classifier" in copy and "A text CNN" in copy  # the copy did change
    assert "ConvText" not in copy and "self.head" not in copy and "def forward(self, tokens, pad_mask)" in copy
    exact = CandidateProgram(name="s", source=SEED).program_hash()
    assert CandidateProgram(name="c", source=copy).program_hash() != exact
    assert structure(copy) == structure(SEED)
    assert structure(copy, PRELUDE) == structure(SEED, PRELUDE) != structure(SEED)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("hidden: int = 128", "hidden: int = 96"),  # a constant: the hidden size
        ("nn.ReLU()", "nn.GELU()"),  # a layer type
        ("nn.Sequential(nn.ReLU(),", "nn.Sequential(nn.LayerNorm(3 * hidden), nn.ReLU(),"),  # an added layer
        ("def build_model(", "def make_model("),  # the entry point is the contract
        ("def forward(", "def run("),  # so is forward, which nn.Module calls
        ("kernel_size=k, padding=k // 2", "kernel_size=k, padding=k // 3"),
        ("nn.Conv1d(input_dim, channels,", "nn.Conv1d(channels, input_dim,"),  # arguments swapped
        ("self.drop_in(x)", "self.drop_in(x.flip(1))"),
    ],
)
def test_a_real_change_changes_the_structure_hash(old: str, new: str) -> None:
    assert SEED.count(old) == 1
    changed = SEED.replace(old, new)
    assert structure(changed) != structure(SEED)
    assert structure(near_copy(changed)) == structure(changed)  # still a change once renamed


def test_keywords_to_the_programs_own_classes_are_renamed_with_their_parameters() -> None:
    with_keyword = SEED.replace("ConvText(input_dim, num_classes)", "ConvText(input_dim, num_classes, hidden=64)")
    other_parameter = with_keyword.replace("hidden=64", "channels=64")
    assert structure(near_copy(with_keyword)) == structure(with_keyword)
    assert "width=64" in near_copy(with_keyword)
    assert structure(other_parameter) != structure(with_keyword)


EVERY_BINDING = """
import torch
import torch.nn as nn
from torch.nn import functional as F

SCALE = 2.0


def helper(x, *rest, factor=1.0, **extra):
    total = x * factor
    for item in rest:
        total = total + item
    try:
        total = total / SCALE
    except ZeroDivisionError as err:
        raise ValueError(str(err)) from err
    with torch.no_grad() as guard:
        print(guard)
    if (n := len(rest)) > 1:
        total = total * n
    return total, [v * 2 for v in extra.values()], (lambda a, b=3: a + b)(1)


class Block(nn.Module):
    size = 4

    def __init__(self, dim, depth=2):
        super().__init__()
        self.proj = nn.GRU(dim, dim, batch_first=True)
        self.weight = nn.Parameter(torch.zeros(dim))

    def forward(self, x, mask):
        global SCALE
        SCALE = 3.0
        return F.relu(self.proj(x)[0]) * self.weight + self.proj.weight_ih_l0.sum() * self.size


def build_model(input_dim, num_classes):
    return Block(input_dim, depth=3)
"""
OTHER_NAMES = {
    "SCALE": "K", "helper": "fn", "x": "inp", "rest": "others", "factor": "f", "extra": "kw", "total": "acc",
    "item": "el", "err": "e", "guard": "g", "n": "count", "v": "val", "a": "p", "b": "q", "Block": "Unit",
    "size": "sz", "dim": "d", "depth": "layers", "proj": "rnn", "weight": "scale", "mask": "m",
}  # fmt: skip


def test_every_kind_of_binding_is_renamed_and_nothing_else() -> None:
    renamed = EVERY_BINDING
    for old, new in OTHER_NAMES.items():
        renamed = re.sub(rf"\b{old}\b", new, renamed)
    assert "self.scale + self.rnn.weight_ih_l0" in renamed and "Unit(input_dim, layers=3)" in renamed
    assert structure(renamed) == structure(EVERY_BINDING)
    text = ast.unparse(canonical_tree(EVERY_BINDING, keep={"build_model", "forward"}))
    library = ("import torch.nn as nn", "F.relu(", "nn.GRU(", "batch_first=True", "torch.zeros(", ".weight_ih_l0")
    builtins = ("ZeroDivisionError", "ValueError(str(", "len(", "print(", "super().__init__()")
    for kept in (*library, *builtins, "def build_model(", "def forward("):
        assert kept in text, kept
    for bound in ("SCALE", "helper", "total", "item", "err", "guard", "Block", "size", "proj", "weight", "depth"):
        assert not re.search(rf"\b{re.escape(bound)}\b", text), bound
    assert ", p2=3)" in text  # the keyword names Block's third parameter (self, dim, depth)
    library_attribute = EVERY_BINDING.replace("weight_ih_l0", "bias_ih_l0")
    assert structure(library_attribute) != structure(EVERY_BINDING)


def test_the_seeds_are_not_near_copies_of_each_other() -> None:
    hashes = {path.stem: structure(path.read_text()) for path in seed_files()}
    assert len(hashes) >= 7 and len(set(hashes.values())) == len(hashes)


def test_an_unparseable_program_hashes_its_text() -> None:
    broken = "def build_model(:\n"
    assert structure(broken) == CandidateProgram(name="b", source=broken).program_hash()
    assert structure(broken) != structure(broken + "  # other\n")


def _proposal(i: int, source: str) -> Proposal:
    plan = ChildPlan(
        child_id=f"g01-c0{i}", generation=1, index=i, parents=["seed-conv_text"], kind="mutation", rng_seed=""
    )
    return Proposal(plan=plan, operator="llm-mutation", source=source)


def test_check_children_records_near_copies_as_duplicates_and_trains_only_real_changes(tmp_path) -> None:
    layout = RunLayout(tmp_path)
    layout.write_program("seed-conv_text", SEED)
    known = {CandidateProgram(name="seed-conv_text", source=SEED, prelude=PRELUDE).program_hash(): "seed-conv_text"}
    changed = SEED.replace("hidden: int = 128", "hidden: int = 96")
    proposals = [
        _proposal(0, near_copy(SEED)),
        _proposal(1, SEED + "\n# the same program\n"),
        _proposal(2, changed),
        _proposal(3, near_copy(changed)),
    ]
    recorded, jobs = check_children(proposals, known, PRELUDE, StaticCheckConfig(), layout)
    outcome = {i.id: (i.status, i.copy_of, i.reason) for i in recorded}
    near = "the same program once docstrings, comments and names are ignored"
    assert outcome == {
        "g01-c00": (Status.DUPLICATE, "seed-conv_text", f"near-copy of seed-conv_text: {near}"),
        "g01-c01": (Status.DUPLICATE, "seed-conv_text", "same normalised AST as seed-conv_text"),
        "g01-c03": (Status.DUPLICATE, "g01-c02", f"near-copy of g01-c02: {near}"),
    }
    assert [(job.individual.id, job.individual.status, job.individual.copy_of) for job in jobs] == [
        ("g01-c02", Status.PENDING, "")
    ]
    assert layout.read_program("g01-c00") == near_copy(SEED)  # duplicates are saved like any child
    assert known[jobs[0].program.program_hash()] == "g01-c02"


def test_a_seed_that_is_a_near_copy_of_an_earlier_seed_is_a_duplicate(tmp_path) -> None:
    seeds = [
        CandidateProgram(name="seed-conv_text", source=SEED),
        CandidateProgram(name="seed-renamed", source=near_copy(SEED)),
        CandidateProgram(name="seed-gru", source=(SEED_DIR / "recurrent_gru.py").read_text()),
    ]
    recorded, jobs = check_children([seed_proposal(p) for p in seeds], {}, "", StaticCheckConfig(), tmp_path)
    assert [(i.id, i.status, i.copy_of) for i in recorded] == [("seed-renamed", Status.DUPLICATE, "seed-conv_text")]
    assert [job.individual.id for job in jobs] == ["seed-conv_text", "seed-gru"]
