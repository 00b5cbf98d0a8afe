"""Attention pooling (a learned scorer over tokens) followed by an MLP."""

import torch
import torch.nn as nn


class AttentionPoolMLP(nn.Module):
    def __init__(self, input_dim: int, num_classes: int, hidden: int = 256):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(input_dim, 128), nn.Tanh(), nn.Linear(128, 1))
        self.mlp = nn.Sequential(
            nn.Linear(2 * input_dim, hidden), nn.GELU(), nn.Dropout(0.2), nn.Linear(hidden, num_classes)
        )

    def forward(self, x, mask):
        scores = self.score(x).squeeze(-1).masked_fill(~mask, -1e4)
        weights = torch.softmax(scores, dim=1).unsqueeze(-1)
        attended = (weights * x).sum(1)
        m = mask.unsqueeze(-1).float()
        mean = (x * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.mlp(torch.cat([attended, mean], dim=-1))


def build_model(input_dim: int, num_classes: int) -> nn.Module:
    return AttentionPoolMLP(input_dim, num_classes)
