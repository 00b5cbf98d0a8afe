"""Settings of the LLM client. The API key itself is never a field: only the name of its env var."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

from evoformer.fields import form_schema

NO_KEY_PLACEHOLDER = "not-needed"


class LLMConfig(BaseModel):
    """Which OpenAI-compatible endpoint to call, how patiently, and how much it may cost."""

    model_config = ConfigDict(json_schema_extra=form_schema())

    base_url: str | None = Field(
        default=None,
        title="LLM endpoint URL",
        description="OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp...); "
        "empty: $OPENAI_BASE_URL, else api.openai.com.",
    )
    model: str = Field(default="gpt-4o-mini", title="LLM model", description="Model name sent with each request.")
    api_key_env: str = Field(
        default="OPENAI_API_KEY",
        title="API key env var",
        description="Name of the environment variable that holds the API key.",
    )
    api_key_secret: str | None = Field(
        default=None,
        title="API key Secret block",
        description="Name of a Prefect Secret block holding the API key, resolved inside the flow (deployment runs); "
        "the key itself never enters the parameters.",
    )
    timeout_s: float = Field(
        default=60,
        gt=0,
        title="LLM HTTP timeout (s)",
        description="Longest wait for the first token of a streamed reply (queue wait and prompt reading) "
        "and between two chunks (a stall), in seconds; not the whole reply (see max_seconds).",
    )
    max_seconds: float = Field(
        default=1800,
        gt=0,
        title="Longest LLM reply (s)",
        description="Longest time one whole reply may take (one attempt), in seconds; also the timeout of a "
        "non-streaming request to a server that refuses streaming.",
    )
    max_retries: int = Field(
        default=5, ge=0, title="LLM retries", description="Re-sends after transient errors (429, 5xx, network)."
    )
    backoff_initial_s: float = Field(
        default=1.0, ge=0, title="First backoff (s)", description="First backoff wait; doubles each retry."
    )
    backoff_max_s: float = Field(
        default=30.0, ge=0, title="Largest backoff (s)", description="Largest backoff wait (before jitter)."
    )
    retry_after_max_s: float = Field(
        default=120.0,
        ge=0,
        title="Largest Retry-After (s)",
        description="Cap on a server-requested wait (Retry-After / retry-after-ms).",
    )
    max_tokens: int = Field(
        default=2048, gt=0, title="Max tokens per reply", description="Most tokens a reply may hold."
    )
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        title="Requests in flight",
        description="Requests in flight at once. Empty: what the server reports (llama.cpp's slots, at most 4); "
        "1 for a loopback server that reports nothing; 4 for a remote one. More requests wait in the client, "
        "untimed, instead of in the server's queue where a client timeout would abandon them.",
    )
    price_prompt_per_1k: float = Field(
        default=0.0, ge=0, title="Prompt price (USD / 1k tokens)", description="USD per 1,000 prompt tokens."
    )
    price_completion_per_1k: float = Field(
        default=0.0, ge=0, title="Completion price (USD / 1k tokens)", description="USD per 1,000 completion tokens."
    )
    budget_usd: float | None = Field(
        default=None,
        ge=0,
        title="Spending cap (USD)",
        description="Spending cap in USD; once reached no new request is made.",
    )
    budget_tokens: int | None = Field(
        default=None,
        ge=0,
        title="Token cap",
        description="Cap on prompt + completion tokens; once reached no new request is made.",
    )

    def resolved_base_url(self) -> str | None:
        """The endpoint: ``base_url``, else ``$OPENAI_BASE_URL``, else None (api.openai.com)."""
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or None

    def is_configured(self) -> bool:
        """True when an endpoint is set (field or env), the API-key env var is set, or a Secret block is named."""
        return (
            self.resolved_base_url() is not None or bool(os.environ.get(self.api_key_env)) or bool(self.api_key_secret)
        )

    def api_key(self) -> str:
        """The key from ``$<api_key_env>``; a placeholder for a custom endpoint without one (local servers)."""
        key = os.environ.get(self.api_key_env)
        if key:
            return key
        if self.resolved_base_url() is not None:
            return NO_KEY_PLACEHOLDER
        from evoformer.llm.errors import LLMAuthError  # the client package (openai) only when a key is missing

        raise LLMAuthError(
            f"no LLM credentials: set ${self.api_key_env} to an API key for api.openai.com, "
            "or set base_url / $OPENAI_BASE_URL to an OpenAI-compatible server"
        )

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        """What these tokens cost at the configured prices."""
        return prompt_tokens / 1000 * self.price_prompt_per_1k + completion_tokens / 1000 * self.price_completion_per_1k
