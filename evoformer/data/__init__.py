"""Data loading, validation and claim-level splitting."""

from evoformer.data.errors import DataSourceError, MalformedRowError
from evoformer.data.records import PairRecord
from evoformer.data.sources import DataSourceConfig, LoadedData, LoadReport, load_pairs
from evoformer.data.splits import DataSplits, SplitConfig, make_splits

__all__ = [
    "DataSourceConfig",
    "DataSourceError",
    "DataSplits",
    "LoadReport",
    "LoadedData",
    "MalformedRowError",
    "PairRecord",
    "SplitConfig",
    "load_pairs",
    "make_splits",
]
