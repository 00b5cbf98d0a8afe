"""Convolutional text model: parallel 1-D convolutions (widths 3 and 5), masked max pooling, MLP."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvText(nn.Module):
    def __init__(self, input_dim: int, num_classes: int, channels: int = 128):
        super().__init__()
        self.convs = nn.ModuleList(
            [nn.Conv1d(input_dim, channels, kernel_size=k, padding=k // 2) for k in (3, 5)]
        )
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(2 * channels, 128), nn.ReLU(), nn.Linear(128, num_classes))

    def forward(self, x, mask):
        h = x.transpose(1, 2)
        pooled = []
        for conv in self.convs:
            c = F.relu(conv(h)).transpose(1, 2)
            c = c.masked_fill(~mask.unsqueeze(-1), -1e4)
            pooled.append(c.max(dim=1).values)
        return self.head(torch.cat(pooled, dim=-1))


def build_model(input_dim: int, num_classes: int) -> nn.Module:
    return ConvText(input_dim, num_classes)
