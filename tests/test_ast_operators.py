"""The offline AST operators: valid, deterministic children that build and keep their shapes.

Generated code is untrusted: it is only ever executed in one separate ``subprocess`` (BUILD test).
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from evoformer.candidates.program import CandidateProgram
from evoformer.candidates.static_check import check_source
from evoformer.evolution.ast_operators import (
    AstEdit,
    OperatorError,
    crossover,
    hyperparameter_slots,
    mutate,
    mutation_kinds,
)
from evoformer.seeds import seed_files

SEEDS = {path.stem: path.read_text() for path in seed_files()}
TRANSFORMERS = ("transformer_base", "transformer_small")

# Programs that are not seeds: module constants, a head count passed into a block, a stack of blocks
# applied in a loop, a named kernel, an LSTM, layers imported by name with positional arguments, and
# depthwise convolutions stacked in an ``nn.Sequential(*[...])``.
EXTRA = {
    "stacked_attention": """
import torch
import torch.nn as nn
import torch.nn.functional as F

HIDDEN = 96


class Block(nn.Module):
    def __init__(self, dim, heads, dropout=0.1):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, h, mask):
        a, _ = self.attn(h, h, h, key_padding_mask=~mask)
        h = self.norm(h + a)
        return h + self.ff(h)


class Model(nn.Module):
    def __init__(self, input_dim, num_classes, heads: int = 6):
        super().__init__()
        self.proj = nn.Linear(input_dim, HIDDEN)
        self.blocks = nn.ModuleList([Block(HIDDEN, heads) for _ in range(2)])
        self.head_dim = HIDDEN // heads
        self.out = nn.Linear(HIDDEN, num_classes)

    def forward(self, x, mask):
        h = F.silu(self.proj(x))
        for block in self.blocks:
            h = block(h, mask)
        m = mask.unsqueeze(-1).float()
        return self.out((h * m).sum(1) / m.sum(1).clamp(min=1.0))


def build_model(input_dim, num_classes):
    return Model(input_dim, num_classes)
""",
    "conv_lstm": """
import torch
from torch import nn


class ConvLSTM(nn.Module):
    def __init__(self, input_dim, num_classes, kernel: int = 5, hidden: int = 64):
        super().__init__()
        self.conv = nn.Conv1d(input_dim, 128, kernel_size=kernel, padding=kernel // 2)
        self.rnn = nn.LSTM(128, hidden, batch_first=True, dropout=0.0)
        self.head = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, 64), nn.ReLU(), nn.Linear(64, num_classes))

    def forward(self, x, mask):
        h = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        h, _ = self.rnn(h)
        h = h.masked_fill(~mask.unsqueeze(-1), -1e4).max(dim=1).values
        return self.head(h)


def build_model(input_dim, num_classes):
    return ConvLSTM(input_dim, num_classes)
""",
    "imported_names": """
import torch
from torch.nn import Linear, ReLU, Sequential, Module, LayerNorm, TransformerEncoderLayer, TransformerEncoder


class M(Module):
    def __init__(self, input_dim, num_classes, width=192, layers=3, heads=6, p=0.15):
        super().__init__()
        self.inp = Sequential(Linear(input_dim, width), LayerNorm(width))
        enc = TransformerEncoderLayer(width, heads, width * 2, p, batch_first=True)
        self.enc = TransformerEncoder(enc, layers)
        self.out = Linear(width, num_classes)

    def forward(self, x, mask):
        h = self.enc(self.inp(x), src_key_padding_mask=~mask)
        return self.out(h[:, 0])


def build_model(input_dim, num_classes):
    return M(input_dim, num_classes)
""",
    "depthwise_blocks": """
import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, dim, kernel_size=3, expansion=2):
        super().__init__()
        self.dw = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.pw = nn.Sequential(nn.Linear(dim, dim * expansion), nn.GELU(), nn.Linear(dim * expansion, dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, h):
        h = h + self.dw(h.transpose(1, 2)).transpose(1, 2)
        return h + self.pw(self.norm(h))


class Model(nn.Module):
    def __init__(self, input_dim, num_classes, dim=96, n_blocks=3):
        super().__init__()
        self.stem = nn.Linear(input_dim, dim)
        self.blocks = nn.Sequential(*[Block(dim) for _ in range(n_blocks)])
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x, mask):
        h = self.blocks(self.stem(x)) * mask.unsqueeze(-1)
        return self.head(h.max(1).values)


def build_model(input_dim, num_classes):
    return Model(input_dim, num_classes)
""",
}

BUILD_SCRIPT = r"""
import json, math, sys
import torch

torch.set_num_threads(1)
children = json.load(open(sys.argv[1]))
x = torch.randn(2, 7, 384)
mask = torch.ones(2, 7, dtype=torch.bool)
mask[1, 4:] = False
results = []
for child in children:
    try:
        namespace = {"__name__": "candidate"}
        exec(compile(child["source"], child["name"], "exec"), namespace)
        torch.manual_seed(0)
        model = namespace["build_model"](384, 3)
        model.train()
        out = model(x, mask)  # training mode: one logits tensor, or a tuple of heads (the contract)
        sum(h.sum() for h in (out if isinstance(out, (tuple, list)) else (out,))).backward()
        model.eval()
        with torch.no_grad():
            out = model(x, mask)
        if tuple(out.shape) != (2, 3):
            raise ValueError(f"output shape {tuple(out.shape)}")
        if not bool(torch.isfinite(out).all()):
            raise ValueError("non-finite output")
        results.append({"name": child["name"], "ok": True})
    except Exception as exc:
        results.append({"name": child["name"], "ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]})
print(json.dumps(results))
"""


def _hash(source: str) -> str:
    return CandidateProgram(name="x", source=source).program_hash()


def _assert_valid(child: AstEdit, *parents: str) -> None:
    report = check_source(child.source)
    assert report.ok, (child.description, report.reasons)
    assert "def build_model(input_dim" in child.source
    assert child.description
    assert _hash(child.source) not in {_hash(p) for p in parents}, child.description


def _slot_values(source: str) -> dict[str, object]:
    return {slot.key: slot.value for slot in hyperparameter_slots(source)}


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_mutations_are_valid_distinct_and_deterministic(name: str) -> None:
    source = SEEDS[name]
    children = set()
    for seed in range(30):
        child = mutate(source, random.Random(seed))
        _assert_valid(child, source)
        assert mutate(source, random.Random(seed)) == child
        children.add(child.source)
    assert len(children) >= 10  # different seeds explore different edits


def test_children_do_not_depend_on_the_process() -> None:
    """Same rng seed, same child, whatever the interpreter's hash seed."""
    script = (
        "import hashlib, random\n"
        "from evoformer.evolution.ast_operators import crossover, mutate\n"
        "from evoformer.seeds import seed_files\n"
        "sources = [p.read_text() for p in seed_files()]\n"
        "h = hashlib.sha256()\n"
        "for i, src in enumerate(sources):\n"
        "    h.update(mutate(src, random.Random(i), max_edits=3).source.encode())\n"
        "    h.update(crossover(src, sources[i - 1], random.Random(i)).source.encode())\n"
        "print(h.hexdigest())\n"
    )
    root = Path(__file__).resolve().parents[1]
    digests = set()
    for hash_seed in ("1", "2"):
        env = {"PYTHONHASHSEED": hash_seed, "PATH": "/usr/bin:/bin"}
        proc = subprocess.run(
            [sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        digests.add(proc.stdout.strip())
    assert len(digests) == 1


def test_mutation_kinds_per_seed() -> None:
    kinds = {name: set(mutation_kinds(source)) for name, source in SEEDS.items()}
    assert {"width", "depth", "heads", "dropout", "activation", "layer"} <= kinds["transformer_base"]
    assert {"width", "depth", "heads", "dropout", "activation", "layer"} <= kinds["transformer_small"]
    assert {"width", "dropout", "kernel", "activation", "layer", "branch"} <= kinds["conv_text"]
    assert {"width", "depth", "dropout", "activation", "layer"} <= kinds["recurrent_gru"]
    assert {"width", "dropout", "activation", "layer"} <= kinds["attention_pool_mlp"]
    slots = _slot_values(SEEDS["transformer_small"])
    assert slots["width:d_model"] == 128 and slots["TransformerEncoderLayer.nhead#0"] == 4
    assert slots["TransformerEncoderLayer.dim_feedforward#0"] == 256
    assert slots["TransformerEncoder.num_layers#0"] == 2


def test_mutation_descriptions_cover_every_kind() -> None:
    descriptions = []
    for source in SEEDS.values():
        for seed in range(40):
            descriptions.append(mutate(source, random.Random(1000 + seed)).description)
    text = "\n".join(descriptions)
    for needle in (
        "width: d_model",
        "width: hidden",
        "dim_feedforward",
        "depth: TransformerEncoder.num_layers",
        "depth: GRU.num_layers",
        "heads: TransformerEncoderLayer.nhead",
        "dropout:",
        "activation: nn.",
        "activation: F.relu",
        "activation: TransformerEncoderLayer.activation",
        "layer: insert",
        "layer: remove",
        "branch: conv kernels",
        "kernel: conv kernels",
    ):
        assert needle in text, needle


def test_heads_divide_d_model() -> None:
    for name in TRANSFORMERS:
        for seed in range(40):
            child = mutate(SEEDS[name], random.Random(seed), max_edits=3)
            slots = _slot_values(child.source)
            heads = slots.get("TransformerEncoderLayer.nhead#0")
            d_model = slots.get("width:d_model", 384)
            assert heads is None or d_model % heads == 0, child.description


def test_branch_edit_keeps_concatenation_width_consistent() -> None:
    seen = 0
    for seed in range(60):
        child = mutate(SEEDS["conv_text"], random.Random(seed), max_edits=1)
        if "branch:" in child.description:
            seen += 1
            kernels = child.description.split("→")[1].split(" (")[0]
            count = len(json.loads(kernels.replace("(", "[").replace(",)", "]").replace(")", "]")))
            assert f"{count} * channels" in child.source, child.description
    assert seen


def test_crossover_of_transformers_mixes_both_parents() -> None:
    a, b = SEEDS["transformer_base"], SEEDS["transformer_small"]
    va, vb = _slot_values(a), _slot_values(b)
    mixed = 0
    for seed in range(10):
        child = crossover(a, b, random.Random(seed))
        _assert_valid(child, a, b)
        assert crossover(a, b, random.Random(seed)) == child
        vc = _slot_values(child.source)
        keys = [k for k in va if k in vb and va[k] != vb[k]]
        assert keys and "crossover (uniform" in child.description
        from_a = [k for k in keys if vc[k] == va[k]]
        from_b = [k for k in keys if vc[k] == vb[k]]
        assert from_b, child.description
        mixed += bool(from_a and from_b)
    assert mixed >= 5


def test_crossover_of_unrelated_seeds_is_valid_or_explained() -> None:
    made = 0
    for name_a, name_b in itertools.permutations(SEEDS, 2):
        try:
            child = crossover(SEEDS[name_a], SEEDS[name_b], random.Random(7))
        except OperatorError as exc:
            assert "parents" in str(exc) or "crossover" in str(exc)
            continue
        _assert_valid(child, SEEDS[name_a], SEEDS[name_b])
        made += 1
    assert made >= 15


def test_operator_errors() -> None:
    # A program with one value per kind of slot: crossing it with itself has nothing to take. (A seed
    # with, say, two dropout rates would swap them by kind and make a valid child.)
    plain = (
        "import torch.nn as nn\n\n\ndef build_model(input_dim: int, num_classes: int) -> nn.Module:\n"
        "    return nn.Sequential(nn.Dropout(0.2), nn.Linear(input_dim, 128), nn.ReLU(), nn.Linear(128, num_classes))\n"
    )
    with pytest.raises(OperatorError, match="nothing at all|no differing|B has no"):
        crossover(plain, plain, random.Random(0))
    with pytest.raises(OperatorError, match="does not parse"):
        mutate("def build_model(:\n", random.Random(0))
    with pytest.raises(OperatorError, match="build_model"):
        mutate("import torch\nX = 3\n", random.Random(0))
    with pytest.raises(OperatorError, match="nothing to mutate"):
        mutate("def build_model(input_dim, num_classes):\n    return None\n", random.Random(0))


def _children() -> list[dict[str, str]]:
    children = []
    programs = {**SEEDS, **EXTRA}
    names = sorted(programs)
    for index, name in enumerate(names):
        source = programs[name]
        for seed in range(10):
            child = mutate(source, random.Random(100 + seed))
            children.append(
                {"name": f"{name}/mutation{seed}", "description": child.description, "source": child.source}
            )
            if seed < 3:  # a second generation: edits stack on edits
                grandchild = mutate(child.source, random.Random(200 + seed), max_edits=3)
                children.append(
                    {
                        "name": f"{name}/mutation{seed}/mutation",
                        "description": grandchild.description,
                        "source": grandchild.source,
                    }
                )
        rng = random.Random(300 + index)
        for seed in range(5):
            other = names[(index + 1 + seed) % len(names)]
            try:
                child = crossover(source, programs[other], random.Random(seed))
            except OperatorError:
                other = rng.choice(TRANSFORMERS)
                if other == name:
                    continue
                child = crossover(source, programs[other], random.Random(seed))
            children.append(
                {"name": f"{name}x{other}/crossover{seed}", "description": child.description, "source": child.source}
            )
        lineage, history = source, []  # eight generations: inserted layers, branches and widths interact
        for generation in range(8):
            step = random.Random(400 + 10 * index + generation)
            try:
                if step.random() < 0.75:
                    child = mutate(lineage, step)
                else:
                    child = crossover(lineage, programs[step.choice(names)], step)
            except OperatorError:
                continue
            lineage = child.source
            history.append(child.description)
            children.append(
                {"name": f"{name}/generation{generation}", "description": " || ".join(history), "source": lineage}
            )
    return children


def test_children_build_and_run(tmp_path: Path) -> None:
    """BUILD: every child builds, runs forward/backward with padding, returns finite [2, 3] logits."""
    children = _children()
    assert len(children) >= 5 * 15
    payload = tmp_path / "children.json"
    payload.write_text(json.dumps(children))
    proc = subprocess.run(
        [sys.executable, "-I", "-c", BUILD_SCRIPT, str(payload)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r["name"] for r in results] == [c["name"] for c in children]
    described = {c["name"]: c["description"] for c in children}
    failed = [f"{r['name']}: {r['error']} [{described[r['name']]}]" for r in results if not r["ok"]]
    assert not failed, "\n".join(failed)
