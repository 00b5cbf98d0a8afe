"""Segment pair features and an MLP: the claim and evidence segments of the joint encoding are
found at the middle [SEP]; their mean states u, v give [u, v, |u - v|, u * v] (as in sentence-pair
classifiers), then LayerNorm and a dropout-regularised MLP."""

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


class SegmentPairMLP(nn.Module):
    def __init__(self, input_dim: int, num_classes: int, hidden: int = 256):
        super().__init__()
        self.drop_in = nn.Dropout(0.1)
        self.mlp = nn.Sequential(
            nn.LayerNorm(4 * input_dim), nn.Dropout(0.25), nn.Linear(4 * input_dim, hidden), nn.GELU(),
            nn.Dropout(0.5), nn.Linear(hidden, num_classes),
        )

    def forward(self, x, mask):
        claim, evidence = segments(x, mask)
        return self.mlp(pair_features(self.drop_in(x), claim, evidence))


def build_model(input_dim: int, num_classes: int) -> nn.Module:
    return SegmentPairMLP(input_dim, num_classes)
