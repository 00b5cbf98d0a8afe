"""Errors raised while loading data. Each names where the problem is."""

from __future__ import annotations

from evoformer.errors import UserError


class DataSourceError(UserError, RuntimeError):
    """A data source cannot be read at all (missing file, unreachable hub, unknown format), or its
    content cannot make a classification task (one label only, too few claims for the splits)."""


class MalformedRowError(UserError, ValueError):
    """One row failed validation. ``location`` is ``"<file>:<line>"`` or ``"<file>:row <n>"``."""

    def __init__(self, location: str, reason: str) -> None:
        self.location = location
        self.reason = reason
        super().__init__(
            f"{location}: {reason} (pass on_bad_rows='skip' / --skip-bad-rows to skip and count such rows)"
        )
