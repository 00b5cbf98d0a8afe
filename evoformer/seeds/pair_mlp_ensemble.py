"""An ensemble of pair-feature MLP heads: the claim and evidence segments of the joint encoding are
found at the middle [SEP]; their mean states u, v give [u, v, |u - v|, u * v]; five heads (input
dropout, LayerNorm, a dropout-regularised MLP) read them. In training the heads' logits are
returned as a tuple, so each head gets its own loss and they learn independently (a deep
ensemble); in eval the output is their mean log-probability."""

import torch
import torch.nn as nn
import torch.nn.functional as F


def segments(x, mask):
    """Claim and evidence masks of the joint ``claim [SEP] evidence [SEP]`` encoding. The middle
    [SEP] is the token (not the first, not the last two) whose state is closest to the final [SEP]'s."""
    b, t, _ = x.shape
    lengths = mask.sum(1)
    last = x[torch.arange(b), (lengths - 1).clamp(min=0)]
    sim = (F.normalize(x, dim=-1) * F.normalize(last, dim=-1).unsqueeze(1)).sum(-1)
    pos = torch.arange(t, device=x.device).unsqueeze(0)
    inner = (pos >= 1) & (pos < (lengths - 2).unsqueeze(1))
    sep = sim.masked_fill(~inner, -2.0).argmax(1).unsqueeze(1)
    return mask & (pos <= sep), mask & (pos > sep)


def masked_mean(x, m):
    m = m.unsqueeze(-1).float()
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


def pair_features(x, claim, evidence):
    """``[u, v, |u - v|, u * v]`` of the mean states u of the claim and v of the evidence."""
    u, v = masked_mean(x, claim), masked_mean(x, evidence)
    return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)


def head(dim: int, hidden: int, num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Dropout(0.1), nn.LayerNorm(dim), nn.Dropout(0.25), nn.Linear(dim, hidden), nn.GELU(),
        nn.Dropout(0.5), nn.Linear(hidden, num_classes),
    )


class PairMLPEnsemble(nn.Module):
    def __init__(self, input_dim: int, num_classes: int, heads: int = 5, hidden: int = 256):
        super().__init__()
        self.heads = nn.ModuleList([head(4 * input_dim, hidden, num_classes) for _ in range(heads)])

    def forward(self, x, mask):
        claim, evidence = segments(x, mask)
        features = pair_features(x, claim, evidence)
        logits = [h(features) for h in self.heads]
        if self.training:
            return tuple(logits)
        return torch.stack([F.log_softmax(z, dim=-1) for z in logits]).mean(0)


def build_model(input_dim: int, num_classes: int) -> nn.Module:
    return PairMLPEnsemble(input_dim, num_classes)
