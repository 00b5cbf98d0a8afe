"""EvoFormer: LLM-driven architecture search with compression for small text classifiers.

This package is the domain library. It never imports Prefect; orchestration lives in
the top-level ``tasks`` and ``flows`` packages.
"""

__version__ = "0.1.0"
