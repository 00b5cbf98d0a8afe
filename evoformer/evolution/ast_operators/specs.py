"""The tables the AST operators work from: value choices and bounds, and the layer constructors they know.

Nothing here looks at a program; ``analysis`` reads programs with these tables, ``kinds`` draws and
checks values within them.
"""

from __future__ import annotations

DEFAULT_INPUT_DIM = 384  # width of the default encoder (all-MiniLM-L6-v2)
DEFAULT_NUM_CLASSES = 3
WIDTH_FACTORS = (0.5, 0.75, 1.25, 1.5, 2.0)
WIDTH_BOUNDS = (8, 2048)
DEPTH_BOUNDS = (1, 8)
HEAD_CHOICES = (1, 2, 3, 4, 6, 8, 12, 16)
DROPOUT_CHOICES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
KERNEL_CHOICES = (1, 3, 5, 7, 9)
ACT_MODULES = {"ReLU": "relu", "GELU": "gelu", "SiLU": "silu", "Tanh": "tanh", "LeakyReLU": "leaky_relu"}
ACT_CLASSES = {name: cls for cls, name in ACT_MODULES.items()}
ACT_FUNCTIONS = ("relu", "gelu", "silu", "tanh", "leaky_relu")
TORCH_ACT_FUNCTIONS = ("relu", "tanh")  # activations that also live in the ``torch`` namespace
TRANSFORMER_ACTIVATIONS = ("relu", "gelu")
MUTATION_KINDS = ("width", "depth", "heads", "dropout", "kernel", "activation", "layer", "branch")

Value = int | float | str | None

# Constructor -> its positional parameters and the role of each (None: not a hyper-parameter).
_RNN = (
    ("input_size", "width_in"),
    ("hidden_size", "width_rnn"),
    ("num_layers", "depth"),
    ("bias", None),
    ("batch_first", None),
    ("dropout", "dropout"),
    ("bidirectional", None),
)
_CONV = (
    ("in_channels", "width_in"),
    ("out_channels", "width_out"),
    ("kernel_size", "kernel"),
    ("stride", None),
    ("padding", "padding"),
    ("dilation", None),
    ("groups", "groups"),
    ("bias", None),
)
_TRANSFORMER_LAYER = (
    ("d_model", "width_through"),
    ("nhead", "heads"),
    ("dim_feedforward", "width_internal"),
    ("dropout", "dropout"),
    ("activation", "activation"),
)
_P_DROPOUT = (("p", "dropout"), ("inplace", None))
SPECS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "Linear": (("in_features", "width_in"), ("out_features", "width_out"), ("bias", None)),
    "Conv1d": _CONV,
    "Conv2d": _CONV,
    "GRU": _RNN,
    "LSTM": _RNN,
    "RNN": _RNN,
    "LayerNorm": (("normalized_shape", "width_through"), ("eps", None)),
    "BatchNorm1d": (("num_features", "width_through"), ("eps", None)),
    "GroupNorm": (("num_groups", "groups"), ("num_channels", "width_through")),
    "Embedding": (("num_embeddings", None), ("embedding_dim", "width_out")),
    "TransformerEncoderLayer": _TRANSFORMER_LAYER,
    "TransformerDecoderLayer": _TRANSFORMER_LAYER,
    "TransformerEncoder": (("encoder_layer", None), ("num_layers", "depth")),
    "MultiheadAttention": (("embed_dim", "width_through"), ("num_heads", "heads"), ("dropout", "dropout")),
    "Dropout": _P_DROPOUT,
    "Dropout1d": _P_DROPOUT,
    "AlphaDropout": _P_DROPOUT,
    "functional.dropout": (("input", None), ("p", "dropout"), ("training", None)),
}
# Attention constructors -> (their width parameter, their head-count parameter).
ATTENTION = {
    "TransformerEncoderLayer": ("d_model", "nhead"),
    "TransformerDecoderLayer": ("d_model", "nhead"),
    "MultiheadAttention": ("embed_dim", "num_heads"),
}
# Constructors -> a parameter that is a slot even when left out, with the default it then has.
IMPLICIT = {
    "GRU": ("num_layers", 1),
    "LSTM": ("num_layers", 1),
    "RNN": ("num_layers", 1),
    "TransformerEncoderLayer": ("activation", "relu"),
    "TransformerDecoderLayer": ("activation", "relu"),
}
RNNS = ("GRU", "LSTM", "RNN")
CONVS = ("Conv1d", "Conv2d")
DROPOUTS = {"Dropout", "Dropout1d", "AlphaDropout"}
NORMS = {"LayerNorm", "BatchNorm1d"}
ELEMENTWISE = set(ACT_MODULES) | DROPOUTS | {"Identity", "ELU", "Mish", "Sigmoid"}
# Role of a constructor parameter (or of a named value's use) -> the kind of site that edits it.
ROLE_KIND = {
    "width_in": "width",
    "width_out": "width",
    "width_through": "width",
    "width_rnn": "width",
    "width_internal": "width",
    "depth": "depth",
    "depth_stack": "depth",
    "heads": "heads",
    "dropout": "dropout",
    "kernel": "kernel",
}
