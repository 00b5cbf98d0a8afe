"""Errors raised while loading data. Each names where the problem is."""

from __future__ import annotations


class DataSourceError(RuntimeError):
    """A data source cannot be read at all (missing file, unreachable hub, unknown format)."""


class MalformedRowError(ValueError):
    """One row failed validation. ``location`` is ``"<file>:<line>"`` or ``"<file>:row <n>"``."""

    def __init__(self, location: str, reason: str) -> None:
        self.location = location
        self.reason = reason
        super().__init__(
            f"{location}: {reason} (pass on_bad_rows='skip' / --skip-bad-rows to skip and count such rows)"
        )
