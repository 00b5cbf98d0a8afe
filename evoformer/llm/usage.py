"""A thread-safe ledger of LLM requests, tokens and cost, with the budget check and save/load."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from pydantic import BaseModel, Field

from evoformer.llm.cache import atomic_write_json
from evoformer.llm.config import LLMConfig
from evoformer.llm.errors import BudgetExhausted


class UsageSnapshot(BaseModel):
    """The ledger's counters at one moment."""

    requests: int = Field(default=0, description="HTTP attempts sent (retries included).")
    retries: int = Field(default=0, description="Re-sends after transient errors.")
    cache_hits: int = Field(default=0, description="Calls answered from the reply cache.")
    failures: int = Field(default=0, description="Calls that ended in an error.")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens: int = Field(default=0, description="prompt_tokens + completion_tokens.")
    cost_usd: float = Field(default=0.0, description="Cost at the configured prices.")


class UsageLedger:
    """Counts what the client spends; ``check_budget`` stops new requests once a cap is reached.

    The cap is checked before each call, so calls already in flight when it is reached still finish.
    """

    def __init__(self, config: LLMConfig | None = None, start: UsageSnapshot | None = None) -> None:
        self.config = config or LLMConfig()
        self._lock = threading.Lock()
        self._s = start.model_copy() if start is not None else UsageSnapshot()

    def record_attempt(self) -> None:
        """One HTTP request sent."""
        with self._lock:
            self._s.requests += 1

    def record_retry(self) -> None:
        """One re-send after a transient error."""
        with self._lock:
            self._s.retries += 1

    def record_success(self, prompt_tokens: int, completion_tokens: int) -> None:
        """A reply arrived: add its tokens and their cost."""
        with self._lock:
            self._s.prompt_tokens += prompt_tokens
            self._s.completion_tokens += completion_tokens
            self._s.tokens = self._s.prompt_tokens + self._s.completion_tokens
            self._s.cost_usd += self.config.cost_usd(prompt_tokens, completion_tokens)

    def record_cache_hit(self) -> None:
        """A call answered from the cache."""
        with self._lock:
            self._s.cache_hits += 1

    def record_failure(self) -> None:
        """A call that ended in an error."""
        with self._lock:
            self._s.failures += 1

    def _reached(self) -> str | None:
        budget_usd, budget_tokens = self.config.budget_usd, self.config.budget_tokens
        if budget_usd is not None and self._s.cost_usd >= budget_usd:
            return f"LLM budget reached: ${self._s.cost_usd:.4f} spent of ${budget_usd:.4f}"
        if budget_tokens is not None and self._s.tokens >= budget_tokens:
            return f"LLM budget reached: {self._s.tokens} tokens used of {budget_tokens}"
        return None

    def budget_reached(self) -> bool:
        """True once the USD or token cap is reached."""
        with self._lock:
            return self._reached() is not None

    def check_budget(self) -> None:
        """Raise :class:`BudgetExhausted` once the USD or token cap is reached."""
        with self._lock:
            reason = self._reached()
        if reason is not None:
            raise BudgetExhausted(reason)

    def snapshot(self) -> UsageSnapshot:
        """A copy of the counters."""
        with self._lock:
            return self._s.model_copy()

    def save(self, path: str | Path) -> None:
        """Write the counters as JSON, atomically."""
        atomic_write_json(Path(path), self.snapshot().model_dump(mode="json"))

    @classmethod
    def load(cls, path: str | Path, config: LLMConfig | None = None) -> UsageLedger:
        """The ledger saved at ``path`` (a fresh one when absent), to keep accumulating on resume."""
        path = Path(path)
        if not path.is_file():
            return cls(config)
        try:
            start = UsageSnapshot.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except ValueError as err:
            # A budget must not silently restart from zero: refuse rather than overspend.
            raise ValueError(f"unreadable LLM usage ledger {path}: {err}") from err
        return cls(config, start)
