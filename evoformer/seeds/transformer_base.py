"""4-layer transformer encoder, d_model = input dim, 4 heads, FF 512, mean pooling (the original seed)."""

import torch.nn as nn


class TransformerClassifier(nn.Module):
    def __init__(self, input_dim: int, num_classes: int):
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            d_model=input_dim, nhead=4, dim_feedforward=512, dropout=0.1, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=4, enable_nested_tensor=False)
        self.head = nn.Linear(input_dim, num_classes)

    def forward(self, x, mask):
        h = self.encoder(x, src_key_padding_mask=~mask)
        m = mask.unsqueeze(-1).float()
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.head(pooled)


def build_model(input_dim: int, num_classes: int) -> nn.Module:
    return TransformerClassifier(input_dim, num_classes)
