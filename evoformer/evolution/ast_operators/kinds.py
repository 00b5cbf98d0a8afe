"""The kinds of edit site, each defined once: how a new value is drawn and which values are taken.

``SITE_KINDS`` maps a kind's name to its ``SiteKind``; a ``Site`` names its kind and
carries the few facts its rule needs (``params``: the head counts a width must stay divisible by, the
widths a head count must divide, the activations to choose from, the layer edits to choose from ...).
Mutation draws from ``propose``; crossover copies another program's value only where ``accepts``
says so; validation checks every value of a program against ``legal``.
"""

from __future__ import annotations

import ast
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from .results import Slot
from .specs import (
    DEPTH_BOUNDS,
    DROPOUT_CHOICES,
    HEAD_CHOICES,
    KERNEL_CHOICES,
    MUTATION_KINDS,
    WIDTH_BOUNDS,
    WIDTH_FACTORS,
    Value,
)
from .values import fmt, in_bounds, is_int, is_rate, is_size


def _nothing(value: object, **params: Any) -> bool:
    return False


@dataclass(frozen=True)
class SiteKind:
    """The rules of one kind of edit site.

    ``propose(value, rng, **params)`` draws a new value (None: there is none); ``accepts(value,
    **params)`` tells whether a site can take ``value`` from another program; ``legal(value)``, where
    set, is what every value of this kind must satisfy in a valid program; ``transplant``: crossover of
    different architectures moves values of this kind between them."""

    name: str
    propose: Callable[..., object]
    accepts: Callable[..., bool]
    legal: Callable[[object], bool] | None = None
    transplant: bool = False


def _scale_width(value: int, rng: random.Random, heads: tuple[int, ...] = ()) -> int | None:
    """``value`` scaled by a random factor, rounded to a multiple of 8 and of every head count."""
    multiple = math.lcm(8, *heads)
    factors = list(WIDTH_FACTORS)
    rng.shuffle(factors)
    low = max(WIDTH_BOUNDS[0], multiple)
    for factor in factors:
        new = round(value * factor / multiple) * multiple
        new = max(low, min(WIDTH_BOUNDS[1] // multiple * multiple, new))
        if new != value:
            return new
    return None


def _width_fits(value: object, heads: tuple[int, ...] = ()) -> bool:
    return in_bounds(value, WIDTH_BOUNDS) and all(value % h == 0 for h in heads)


def _new_depth(value: int, rng: random.Random) -> int | None:
    options = [value + d for d in (-2, -1, 1, 2) if DEPTH_BOUNDS[0] <= value + d <= DEPTH_BOUNDS[1]]
    return rng.choice(options) if options else None


def _depth_fits(value: object) -> bool:
    return in_bounds(value, DEPTH_BOUNDS)


def _new_heads(value: int, rng: random.Random, widths: tuple[int, ...] = ()) -> int | None:
    options = [h for h in HEAD_CHOICES if h != value and all(w % h == 0 for w in widths)]
    return rng.choice(options) if options else None


def _heads_fit(value: object, widths: tuple[int, ...] = ()) -> bool:
    return is_size(value) and all(w % value == 0 for w in widths)


def _new_dropout(value: float, rng: random.Random) -> float | None:
    options = [p for p in DROPOUT_CHOICES if abs(p - value) > 1e-9 and abs(p - value) <= 0.2 + 1e-9]
    return rng.choice(options) if options else None


def _new_kernel(value: int, rng: random.Random, taken: tuple[int, ...] = ()) -> int | None:
    """Another odd kernel size, none of ``taken`` (the other branches' kernels)."""
    options = [k for k in KERNEL_CHOICES if k != value and k not in taken]
    return rng.choice(options) if options else None


def _kernel_fits(value: object, taken: tuple[int, ...] = ()) -> bool:
    return is_int(value) and value % 2 == 1 and value <= max(KERNEL_CHOICES)


def _new_activation(value: str, rng: random.Random, choices: tuple[str, ...] = ()) -> str | None:
    """Another activation of ``choices``; the only other one is taken without a draw."""
    options = [a for a in choices if a != value]
    if len(options) == 1:
        return options[0]
    return rng.choice(options) if options else None


def _activation_fits(value: object, choices: tuple[str, ...] = ()) -> bool:
    return value in choices


def _new_layer(value: object, rng: random.Random, options: tuple[tuple, ...] = ()) -> tuple:
    """One of the site's layer edits, with a uniform draw that picks its details (which rate, which layer)."""
    return (*rng.choice(options), rng.random())


def _new_branches(value: int, rng: random.Random) -> tuple[bool, float]:
    """Remove a branch (never the last one) or add one, with a uniform draw that picks which."""
    return (rng.random() < 0.5 and value >= 2, rng.random())


SITE_KINDS: dict[str, SiteKind] = {
    kind.name: kind
    for kind in (
        SiteKind("width", _scale_width, _width_fits, legal=is_size, transplant=True),
        SiteKind("depth", _new_depth, _depth_fits, legal=is_size, transplant=True),
        SiteKind("heads", _new_heads, _heads_fit, legal=is_size, transplant=True),
        SiteKind("dropout", _new_dropout, is_rate, legal=is_rate, transplant=True),
        SiteKind("kernel", _new_kernel, _kernel_fits),
        SiteKind("activation", _new_activation, _activation_fits, transplant=True),
        SiteKind("layer", _new_layer, _nothing),  # structural edits are never copied from another program
        SiteKind("branch", _new_branches, _nothing),
    )
}
assert tuple(SITE_KINDS) == MUTATION_KINDS
TRANSPLANT_KINDS = tuple(name for name, kind in SITE_KINDS.items() if kind.transplant)


class Target:
    """Where a site's value lives in the program, and how a new one is written there."""

    def draw(self, site: Site, rng: random.Random) -> object:
        """A new value for ``site`` (None: there is none): its kind's proposal."""
        return site.rule.propose(site.value, rng, **site.params)

    def write(self, site: Site, new: object) -> str | None:
        """Write ``new`` into the tree; a description of the edit (None: it cannot be made)."""
        raise NotImplementedError


@dataclass
class Site:
    """One place an edit can be made: a value of one kind, where it lives (``target``) and the facts its
    kind's rules need (``params``). Only ``crossable`` sites are matched by key between two programs."""

    kind: str
    key: str
    label: str
    value: Value
    line: int
    target: Target
    params: dict[str, Any] = field(default_factory=dict)
    crossable: bool = False

    @property
    def rule(self) -> SiteKind:
        return SITE_KINDS[self.kind]

    def propose(self, rng: random.Random) -> object:
        return self.target.draw(self, rng)

    def accepts(self, value: object) -> bool:
        return self.rule.accepts(value, **self.params)

    def assign(self, new: object) -> str | None:
        """Write ``new`` (a value, or the edit a structural site proposed); None when nothing changes."""
        if new is None or new == self.value:
            return None
        return self.target.write(self, new)

    def change(self, new: object) -> str:
        """``kind: label old→new``."""
        return f"{self.kind}: {self.label} {fmt(self.value)}→{fmt(new)}"

    def slot(self) -> Slot:
        return Slot(kind=self.kind, key=self.key, label=self.label, value=self.value, line=self.line)


@dataclass
class Literals(Target):
    """Literals that hold one value, rewritten together (a constant, or a width that a producer and its
    consumers share); a literal ``padding`` that is half the kernel size (``half``) follows it."""

    nodes: list[ast.Constant]
    half: ast.Constant | None = None

    def write(self, site: Site, new: object) -> str | None:
        value = cast(Value, new)  # a value of the site's kind (its proposal or one it accepts), never an edit
        for node in self.nodes:
            node.value = value
        if self.half is not None:
            self.half.value = cast(int, new) // 2  # ``half`` is set on kernel sites only, whose values are ints
        return site.change(new)


@dataclass
class DefaultKeyword(Target):
    """A constructor parameter left at its default (the site's value): set by adding the keyword."""

    call: ast.Call
    param: str

    def write(self, site: Site, new: object) -> str | None:
        value = cast(Value, new)  # a value of the parameter's kind (its proposal or one it accepts), never an edit
        self.call.keywords.append(ast.keyword(arg=self.param, value=ast.Constant(value)))
        return site.change(new)
