"""4-layer transformer encoder, d_model = input dim, 4 heads, FF 512, mean pooling (the original seed),
with pre-norm layers and a final LayerNorm: post-norm layers at the default learning rate (1e-3, no
warm-up) collapsed to one class on some feature sets."""

import torch.nn as nn


class TransformerClassifier(nn.Module):
    def __init__(self, input_dim: int, num_classes: int):
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            d_model=input_dim, nhead=4, dim_feedforward=512, dropout=0.1, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=4, norm=nn.LayerNorm(input_dim), enable_nested_tensor=False)
        self.head = nn.Linear(input_dim, num_classes)

    def forward(self, x, mask):
        h = self.encoder(x, src_key_padding_mask=~mask)
        m = mask.unsqueeze(-1).float()
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.head(pooled)


def build_model(input_dim: int, num_classes: int) -> nn.Module:
    return TransformerClassifier(input_dim, num_classes)
