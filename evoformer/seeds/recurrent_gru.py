"""Bidirectional GRU over projected token states, masked mean and max pooling."""

import torch
import torch.nn as nn


class RecurrentClassifier(nn.Module):
    def __init__(self, input_dim: int, num_classes: int, hidden: int = 96):
        super().__init__()
        self.proj = nn.Linear(input_dim, 128)
        self.rnn = nn.GRU(128, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(4 * hidden, num_classes))

    def forward(self, x, mask):
        h, _ = self.rnn(torch.relu(self.proj(x)))
        m = mask.unsqueeze(-1).float()
        mean = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        peak = h.masked_fill(~mask.unsqueeze(-1), -1e4).max(dim=1).values
        return self.head(torch.cat([mean, peak], dim=-1))


def build_model(input_dim: int, num_classes: int) -> nn.Module:
    return RecurrentClassifier(input_dim, num_classes)
