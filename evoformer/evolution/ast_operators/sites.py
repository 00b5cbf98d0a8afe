"""Where edit sites are found: one finder per place in a program, in a fixed order.

A finder only says where a value of some kind lives (``Site``: its kind, key, value, target and the
facts its kind's rule needs); what may be written there is the kind's rule (``kinds.SITE_KINDS``).
The order of ``FINDERS`` is the order of a program's sites, and so of its slots; mutation and
crossover draw from that order, so it is part of what a seed reproduces.
"""

from __future__ import annotations

from collections.abc import Callable

from .analysis import Program
from .branch_sites import branch_sites
from .kinds import Site
from .layer_sites import literal_width_sites, sequential_sites, wrap_sites
from .value_sites import activation_sites, constructor_sites, named_sites, stack_sites

FINDERS: dict[str, Callable[[Program], list[Site]]] = {
    "constructor": constructor_sites,  # literal hyper-parameters of layer constructors (and left-out defaults)
    "named": named_sites,  # defaulted arguments, module and local constants
    "literal_width": literal_width_sites,  # a literal width shared by a producer and its consumers
    "activation": activation_sites,  # activation modules and functions
    "sequential": sequential_sites,  # a layer inserted into or removed from an nn.Sequential
    "wrap": wrap_sites,  # a dropout or norm put in front of a Linear
    "branch": branch_sites,  # kernels and number of parallel conv branches
    "stack": stack_sites,  # the number of blocks in a stack
}


def collect_sites(prog: Program) -> list[Site]:
    """Every edit site of a program, finder by finder."""
    return [site for find in FINDERS.values() for site in find(prog)]
