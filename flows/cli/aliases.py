"""Short flags for the common options: each one stands for a dotted option of the parameter model.

An alias declares no type, default or help of its own: those are the target field's. Before the
command line is parsed, every alias is rewritten into its dotted option(s), in place, so the usual
order rule holds (what comes later wins, including over ``--config``)::

    --time-budget 30            ->  --train.time_budget_s 30
    --skip-bad-rows             ->  --data.data.on_bad_rows skip            (a fixed value)
    --temperatures 0.2 0.6      ->  --operator.temperatures [0.2,0.6]       (several values: a list)
    --candidate a --candidate b ->  --candidates+ a --candidates+ b         (repeatable: appended)
    --ratios 0.7 0.15 0.15      ->  --data.split.train 0.7 --data.split.val 0.15 --data.split.test 0.15
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["value", "const", "list", "append", "spread"]
_NUMBER = re.compile(r"^-\d|^-\.\d")


@dataclass(frozen=True)
class Alias:
    """``flag`` stands for the dotted option(s) ``targets`` (paths in the command's parameter model)."""

    flag: str
    targets: tuple[str, ...]
    kind: Kind = "value"
    const: str | None = None  # kind 'const': the value written
    empty_ok: bool = False  # kind 'list': no value at all means the empty list
    metavar: str = field(default="", compare=False)

    @property
    def target(self) -> str:
        return self.targets[0]

    def rewrite(self, values: list[str]) -> list[str]:
        """The dotted tokens for this flag and the values that followed it."""
        if self.kind == "const":
            return [f"--{t}={self.const}" for t in self.targets]
        if self.kind == "list":
            return [f"--{self.target}={json.dumps([_scalar(v) for v in values])}"]
        if self.kind == "append":
            return [f"--{self.target}+", values[0]]
        if self.kind == "spread":
            return [tok for t, v in zip(self.targets, values, strict=True) for tok in (f"--{t}", v)]
        return [tok for t in self.targets for tok in (f"--{t}", values[0])]

    def describe(self) -> str:
        """``= --dotted.option`` (and what it writes), for the help."""
        if self.kind == "const":
            return " ".join(f"--{t} {self.const}" for t in self.targets)
        if self.kind == "list":
            return f"--{self.target} [V,...]"
        if self.kind == "append":
            return f"--{self.target}+ V (appends)"
        return (
            " ".join(f"--{t} V" for t in self.targets)
            if self.kind == "spread"
            else " + ".join(f"--{t}" for t in self.targets)
        )


def value(flag: str, *targets: str) -> Alias:
    return Alias(flag, targets)


def const(flag: str, target: str, written: str) -> Alias:
    return Alias(flag, (target,), "const", const=written)


def many(flag: str, target: str, empty_ok: bool = False) -> Alias:
    return Alias(flag, (target,), "list", empty_ok=empty_ok)


def append(flag: str, target: str) -> Alias:
    return Alias(flag, (target,), "append")


def spread(flag: str, *targets: str) -> Alias:
    return Alias(flag, targets, "spread")


def under(prefix: str, aliases: list[Alias]) -> list[Alias]:
    """The same aliases for a model nested at ``prefix`` (e.g. the data options of ``evolve``)."""
    if not prefix:
        return list(aliases)
    return [Alias(a.flag, tuple(f"{prefix}.{t}" for t in a.targets), a.kind, a.const, a.empty_ok) for a in aliases]


def _scalar(text: str):
    """'0.5' -> 0.5, '3' -> 3, anything else stays text (for list values)."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


def _is_option(token: str) -> bool:
    return token.startswith("-") and token != "-" and not _NUMBER.match(token)


def rewrite(argv: list[str], aliases: list[Alias]) -> list[str]:
    """``argv`` with every alias replaced by its dotted option(s); anything else is left as it is.

    Raises ValueError for an alias without the value(s) it needs."""
    table = {a.flag: a for a in aliases}
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == "--":
            out += argv[i - 1 :]
            break
        flag, eq, inline = token.partition("=")
        alias = table.get(flag)
        if alias is None:
            out.append(token)
            continue
        if alias.kind == "const":
            if eq:
                raise ValueError(f"{flag} takes no value")
            out += alias.rewrite([])
            continue
        if eq:
            values = [inline]
        elif alias.kind == "list":
            values = []
            while i < len(argv) and not _is_option(argv[i]):
                values.append(argv[i])
                i += 1
        else:
            count = len(alias.targets) if alias.kind == "spread" else 1
            values = argv[i : i + count]
            i += count
            if len(values) < count or any(_is_option(v) for v in values):
                raise ValueError(f"{flag} needs {count} value{'s' if count > 1 else ''}")
        if alias.kind == "list" and not values and not alias.empty_ok:
            raise ValueError(f"{flag} needs at least one value")
        out += alias.rewrite(values)
    return out
