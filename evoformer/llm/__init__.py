"""A generic client for OpenAI-compatible chat endpoints: config, reply cache, usage ledger, retries."""

from evoformer.llm.cache import CachedReply, ReplyCache, reply_key
from evoformer.llm.client import LLMClient, LLMReply, open_client, retry_after_seconds
from evoformer.llm.config import LLMConfig
from evoformer.llm.errors import (
    BudgetExhausted,
    LLMAuthError,
    LLMContextLengthError,
    LLMError,
    LLMRequestError,
    LLMUnavailableError,
)
from evoformer.llm.usage import UsageLedger, UsageSnapshot

__all__ = [
    "BudgetExhausted",
    "CachedReply",
    "LLMAuthError",
    "LLMClient",
    "LLMContextLengthError",
    "LLMConfig",
    "LLMError",
    "LLMReply",
    "LLMRequestError",
    "LLMUnavailableError",
    "ReplyCache",
    "UsageLedger",
    "UsageSnapshot",
    "open_client",
    "reply_key",
    "retry_after_seconds",
]
