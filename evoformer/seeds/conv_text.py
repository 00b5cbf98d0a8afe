"""Convolutional text model: parallel 1-D convolutions (widths 3 and 5), masked max pooling over the
claim and over the evidence separately (segments split at the middle [SEP]), beside the segments'
pair features [u, v, |u - v|, u * v] of mean input states; MLP head."""

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


class ConvText(nn.Module):
    def __init__(self, input_dim: int, num_classes: int, channels: int = 128, hidden: int = 128):
        super().__init__()
        self.drop_in = nn.Dropout(0.1)
        self.convs = nn.ModuleList(
            [nn.Conv1d(input_dim, channels, kernel_size=k, padding=k // 2) for k in (3, 5)]
        )
        self.conv_proj = nn.Sequential(nn.LayerNorm(2 * channels), nn.Dropout(0.5), nn.Linear(2 * channels, hidden))
        self.pair_proj = nn.Sequential(nn.LayerNorm(4 * input_dim), nn.Dropout(0.5), nn.Linear(4 * input_dim, hidden))
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(0.25), nn.Linear(3 * hidden, num_classes))

    def forward(self, x, mask):
        claim, evidence = segments(x, mask)
        x = self.drop_in(x)
        h = x.transpose(1, 2)
        c = torch.cat([F.relu(conv(h)) for conv in self.convs], dim=1).transpose(1, 2)
        peaks = [self.conv_proj(c.masked_fill(~s.unsqueeze(-1), -1e4).max(dim=1).values) for s in (claim, evidence)]
        return self.head(torch.cat(peaks + [self.pair_proj(pair_features(x, claim, evidence))], dim=-1))


def build_model(input_dim: int, num_classes: int) -> nn.Module:
    return ConvText(input_dim, num_classes)
