"""Errors of the LLM client: one base class, one subclass per way a call can fail.

A rejected key, a rejected request and an unreachable endpoint are the user's to fix, so they are
also :class:`~evoformer.errors.UserError` (one message, no traceback)."""

from __future__ import annotations

from evoformer.errors import UserError


class LLMError(RuntimeError):
    """Base of every error raised by :mod:`evoformer.llm`."""


class LLMAuthError(UserError, LLMError):
    """The endpoint rejected the credentials (401/403), or no credentials are configured. Never retried."""


class LLMRequestError(UserError, LLMError):
    """The endpoint rejected the request itself (a 4xx other than auth and 429). Not retried."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LLMContextLengthError(LLMRequestError):
    """The prompt (with the reply's token allowance) does not fit the model's context (an HTTP 400
    naming the context length). Not retried as is: the caller sends a shorter prompt."""


class LLMUnavailableError(UserError, LLMError):
    """Retries ran out on transient failures (429, 5xx, connection errors, timeouts, malformed replies).

    ``unreachable``: the last attempt found no server at all (connection refused or dropped, not a
    timeout), as when the server died; the same request can succeed once it is back."""

    def __init__(self, message: str, attempts: int, last_error: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_error = last_error
        self.unreachable = unreachable


class BudgetExhausted(LLMError):
    """The configured spending cap (USD or tokens) is reached: no new request is made."""
