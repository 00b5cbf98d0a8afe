"""Synthetic claim/evidence examples: import, LLM generation, quality gates and the augmented set."""
