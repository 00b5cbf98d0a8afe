"""Settings of the LLM client (declared in :mod:`evoformer.config.llm`, with the other settings)."""

from evoformer.config.llm import NO_KEY_PLACEHOLDER, LLMConfig

__all__ = ["NO_KEY_PLACEHOLDER", "LLMConfig"]
