"""The seeds are self-contained programs that repeat a few small helpers: every copy stays the same.

A helper is a top-level function that more than one seed defines under the same name (the entry point
``build_model`` is each seed's own). Copies are compared as ``ast.unparse`` of their definitions, so
comments and formatting may differ, code and docstrings may not.
"""

from __future__ import annotations

import ast
from collections import defaultdict

import pytest

from evoformer.candidates.program import ENTRY_POINT
from evoformer.seeds import seed_files


def _top_level_functions() -> dict[str, dict[str, str]]:
    """Function name -> seed -> ``ast.unparse`` of its definition, over every seed's top-level functions."""
    found: dict[str, dict[str, str]] = defaultdict(dict)
    for path in seed_files():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found[node.name][path.stem] = ast.unparse(node)
    return found


FUNCTIONS = _top_level_functions()
SHARED = sorted(name for name, copies in FUNCTIONS.items() if len(copies) >= 2 and name != ENTRY_POINT)


def test_seeds_share_the_known_helpers() -> None:
    """The comparison below is not vacuous: the helpers the seeds are known to repeat are found."""
    assert {"segments", "masked_mean", "pair_features"} <= set(SHARED), SHARED


@pytest.mark.parametrize("name", SHARED)
def test_shared_helper_is_identical_in_every_seed(name: str) -> None:
    variants: dict[str, list[str]] = defaultdict(list)
    for seed, source in sorted(FUNCTIONS[name].items()):
        variants[source].append(seed)
    assert len(variants) == 1, (
        f"{name} has {len(variants)} different copies among the seeds: "
        + "; ".join(", ".join(seeds) for seeds in variants.values())
        + " (the seeds are self-contained programs: make the same change in every copy)"
    )
