"""The offline evolution operator: mutation and crossover on a candidate program's AST (no LLM).

Every edit is chosen so that the child keeps its shapes consistent by construction:

* a width is only changed where it is one named value that every consumer references (a defaulted
  ``__init__`` argument, a module or local constant), a literal that a producer and all its
  consumers share (rewritten together), or internal to one layer (``dim_feedforward``);
* heads always divide ``d_model`` (384, the default encoder's width, when it is the input width);
* inserted layers are shape-preserving (dropout, an activation, ``LayerNorm`` of a known width);
* a parallel-branch tuple only grows or shrinks when the ``n * channels`` that sizes the
  concatenation is rewritten with it.

Children are checked statically (``check_source``), against the parent's constraints
(``d_model % nhead``, exact integer divisions, positive sizes) and must differ by AST hash. Nothing
here executes candidate code. All randomness comes from the ``random.Random`` passed in.

The modules, in the order they build on each other:

* ``specs``: value choices and bounds, and the layer constructors known (their parameters' roles);
* ``values``, ``analysis``: static facts about nodes and about one parsed program (``Program``);
* ``kinds``: each kind of edit site defined once (``SiteKind`` in ``SITE_KINDS``: how a value is
  drawn, which values are taken, what is legal) and the ``Site`` that names one;
* ``value_sites``, ``layer_sites``, ``branch_sites``: where sites are found, gathered in order by
  ``sites.FINDERS``;
* ``validation``: whether a child is valid; ``operators``: ``mutate``, ``crossover`` and the slots.
"""

from __future__ import annotations

from .kinds import SITE_KINDS, SiteKind
from .operators import crossover, hyperparameter_slots, mutate, mutation_kinds
from .results import AstEdit, OperatorError, Slot
from .specs import (
    ACT_CLASSES,
    ACT_FUNCTIONS,
    ACT_MODULES,
    DEFAULT_INPUT_DIM,
    DEFAULT_NUM_CLASSES,
    DEPTH_BOUNDS,
    DROPOUT_CHOICES,
    HEAD_CHOICES,
    KERNEL_CHOICES,
    MUTATION_KINDS,
    TORCH_ACT_FUNCTIONS,
    TRANSFORMER_ACTIVATIONS,
    WIDTH_BOUNDS,
    WIDTH_FACTORS,
    Value,
)

__all__ = [
    "ACT_CLASSES",
    "ACT_FUNCTIONS",
    "ACT_MODULES",
    "DEFAULT_INPUT_DIM",
    "DEFAULT_NUM_CLASSES",
    "DEPTH_BOUNDS",
    "DROPOUT_CHOICES",
    "HEAD_CHOICES",
    "KERNEL_CHOICES",
    "MUTATION_KINDS",
    "SITE_KINDS",
    "TORCH_ACT_FUNCTIONS",
    "TRANSFORMER_ACTIVATIONS",
    "WIDTH_BOUNDS",
    "WIDTH_FACTORS",
    "AstEdit",
    "OperatorError",
    "SiteKind",
    "Slot",
    "Value",
    "crossover",
    "hyperparameter_slots",
    "mutate",
    "mutation_kinds",
]
