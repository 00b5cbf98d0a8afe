"""Pruning reaches its sparsity and stays through fine-tuning; int8 models run and shrink."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from evoformer.compression.techniques import (
    dynamic_int8, global_magnitude_prune, mha_fastpath_disabled, parameter_counts, prunable_parameters, serialized_bytes,
)


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
