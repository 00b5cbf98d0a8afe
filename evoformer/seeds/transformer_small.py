"""Narrow transformer: project to 128, 2 layers, 4 heads, FF 256, mean pooling."""

import torch.nn as nn


class SmallTransformer(nn.Module):
    def __init__(self, input_dim: int, num_classes: int, d_model: int = 128):
        super().__init__()
        self.proj = nn.Linear(input_dim, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model=d_model, nhead=4, dim_feedforward=256, dropout=0.1, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(d_model, num_classes))

    def forward(self, x, mask):
        h = self.encoder(self.proj(x), src_key_padding_mask=~mask)
        m = mask.unsqueeze(-1).float()
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.head(pooled)


def build_model(input_dim: int, num_classes: int) -> nn.Module:
    return SmallTransformer(input_dim, num_classes)
