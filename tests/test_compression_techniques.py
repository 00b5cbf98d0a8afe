"""Pruning reaches its sparsity and stays through fine-tuning; int8 models run and shrink."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from evoformer.compression.techniques import (
    dynamic_int8,
    global_magnitude_prune,
    mha_fastpath_disabled,
    parameter_counts,
    prunable_parameters,
    serialized_bytes,
)

pytestmark = pytest.mark.integration  # trains in the sandbox, runs flows or starts servers


class TinyTransformer(nn.Module):
    def __init__(self, d: int = 32):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d, 4, 64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 3)

    def forward(self, x, mask):
        h = self.encoder(x, src_key_padding_mask=~mask)
        m = mask.unsqueeze(-1).float()
        return self.head((h * m).sum(1) / m.sum(1))


class TinyGRU(nn.Module):
    def __init__(self, d: int = 32):
        super().__init__()
        self.rnn = nn.GRU(d, 48, batch_first=True)
        self.head = nn.Linear(48, 3)

    def forward(self, x, mask):
        return self.head(self.rnn(x)[0][:, -1])


def _inputs(d: int = 32):
    torch.manual_seed(0)
    x = torch.randn(4, 9, d)
    mask = torch.ones(4, 9, dtype=torch.bool)
    mask[1, 6:] = False
    return x, mask


@pytest.mark.parametrize("model_cls", [TinyTransformer, TinyGRU])
@pytest.mark.parametrize("sparsity", [0.3, 0.7])
def test_global_pruning_reaches_the_sparsity_and_survives_fine_tuning(model_cls, sparsity) -> None:
    torch.manual_seed(0)
    model = model_cls()
    pruned = global_magnitude_prune(model, sparsity)
    assert abs(pruned.sparsity() - sparsity) < 0.01
    x, mask = _inputs()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(3):  # masks keep pruned weights at zero while fine-tuning
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x, mask), torch.tensor([0, 1, 2, 0])).backward()
        optimizer.step()
    assert abs(pruned.sparsity() - sparsity) < 0.01
    pruned.make_permanent()
    assert not any(name.endswith("_orig") for name, _ in model.named_parameters())
    total, nonzero = parameter_counts(model)
    pruned_total = sum(getattr(m, n).numel() for m, n in prunable_parameters(model))
    assert total - nonzero == pytest.approx(sparsity * pruned_total, abs=0.01 * pruned_total)
    assert torch.isfinite(model(x, mask)).all()


def test_pruning_rejects_bad_sparsity() -> None:
    with pytest.raises(ValueError, match="sparsity"):
        global_magnitude_prune(TinyGRU(), 1.0)


@pytest.mark.parametrize("model_cls", [TinyTransformer, TinyGRU])
def test_dynamic_int8_runs_close_to_fp32_and_shrinks(model_cls) -> None:
    torch.manual_seed(0)
    model = model_cls().eval()
    x, mask = _inputs()
    with torch.no_grad(), mha_fastpath_disabled():
        reference = model(x, mask)
        quantized = dynamic_int8(copy.deepcopy(model))
        out = quantized(x, mask)
    assert out.shape == (4, 3) and torch.isfinite(out).all()
    assert (out - reference).abs().max() < 0.1
    assert serialized_bytes(quantized) < serialized_bytes(model_cls())
    assert torch.backends.mha.get_fastpath_enabled()  # restored after the block


class TinyConv(nn.Module):
    def __init__(self, d: int = 32):
        super().__init__()
        self.conv = nn.Conv1d(d, 64, 3, padding=1)
        self.hidden = nn.Linear(64, 48)
        self.head = nn.Linear(48, 3)

    def forward(self, x, mask):
        h = torch.relu(self.conv(x.transpose(1, 2))).amax(dim=2)
        return self.head(torch.relu(self.hidden(h)))


@pytest.mark.parametrize("model_cls", [TinyTransformer, TinyConv])
def test_structured_pruning_shrinks_the_model_and_keeps_outputs_valid(model_cls) -> None:
    from evoformer.compression.techniques import structured_prune

    torch.manual_seed(0)
    model = model_cls().eval()
    x, mask = _inputs()
    before = parameter_counts(model)[0]
    pruned = structured_prune(model, (x, mask), 0.5, num_classes=3)
    assert parameter_counts(model)[0] == before  # the original is untouched
    model = pruned
    # The tiny transformer's residual stream is its input, so only FFN neurons can go.
    assert parameter_counts(model)[0] < (0.8 if model_cls is TinyTransformer else 0.5) * before
    for attention in (m for m in model.modules() if isinstance(m, nn.MultiheadAttention)):
        assert (
            attention.embed_dim % attention.num_heads == 0
            and attention.head_dim * attention.num_heads == attention.embed_dim
        )
    with torch.no_grad():
        logits = model(x, mask)
    assert logits.shape == (4, 3) and torch.isfinite(logits).all()
    model.train()
    nn.functional.cross_entropy(model(x, mask), torch.tensor([0, 1, 2, 0])).backward()  # still trainable


def test_structured_pruning_says_when_it_does_not_apply() -> None:
    from evoformer.compression.techniques import NotApplicable, structured_prune

    x, mask = _inputs()
    with pytest.raises(NotApplicable, match="recurrent"):
        structured_prune(TinyGRU(), (x, mask), 0.5, num_classes=3)


def test_onnx_runtime_int8_runs_close_to_fp32_and_is_smaller(tmp_path) -> None:
    from evoformer.compression.onnx_runtime import OnnxModel, export_onnx, onnx_counts, quantize_onnx

    torch.manual_seed(0)
    model = TinyTransformer(d=32).eval()
    with torch.no_grad():  # the encoder's layers start as copies, which the exporter would store once
        for param in model.parameters():
            param.add_(0.01 * torch.randn_like(param))
    x, mask = _inputs()
    fp32 = export_onnx(model, (x[:2], mask[:2]), tmp_path / "m.onnx")
    int8 = quantize_onnx(fp32, tmp_path / "m-int8.onnx")
    assert int8.stat().st_size < 0.6 * fp32.stat().st_size  # a tiny model: the graph is a good part of the file
    total, nonzero = onnx_counts(fp32)
    assert total >= parameter_counts(model)[0] and nonzero <= total
    with torch.no_grad():
        reference = model(x, mask)
    longer = torch.randn(1, 15, 32), torch.ones(1, 15, dtype=torch.bool)  # other batch and length than exported
    for path, tolerance in ((fp32, 1e-4), (int8, 0.2)):
        session = OnnxModel(path, threads=1)
        assert torch.allclose(session(x, mask), reference, atol=tolerance)
        assert session(*longer).shape == (1, 3)


def test_torchao_int8_runs() -> None:
    from evoformer.compression.techniques import torchao_int8

    torch.manual_seed(0)
    model = TinyConv()
    x, mask = _inputs()
    with torch.no_grad():
        reference = model(x, mask)
        out = torchao_int8(copy.deepcopy(model))(x, mask)
    assert out.shape == reference.shape and torch.allclose(out, reference, atol=0.1)
