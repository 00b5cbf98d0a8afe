"""Resolve the LLM API key inside a flow run from a Prefect Secret block named in the parameters.

Deployment runs started from the GUI carry only the *name* of the Secret block
(``LLMConfig.api_key_secret``). The value is read here, inside the flow process, and kept on a
private attribute of the config that is never serialised: not in parameters, results, logs or
``os.environ`` (so no child process inherits it).

Not named ``secrets``: Prefect puts ``flows/`` on ``sys.path`` when it loads a flow from its file
(deployment registration does), and a ``secrets.py`` there shadowed the standard library's
``secrets`` in every process started afterwards (numpy and pydantic import it).
"""

from __future__ import annotations

from pydantic import PrivateAttr

from evoformer.llm import LLMConfig


class KeyedLLMConfig(LLMConfig):
    """An ``LLMConfig`` that carries its key in memory (a private attribute, never dumped)."""

    _key: str = PrivateAttr(default="")

    def api_key(self) -> str:
        return self._key or super().api_key()


def with_secret_key(config: LLMConfig) -> LLMConfig:
    """``config`` unchanged without ``api_key_secret``; else a copy holding the Secret block's value in memory."""
    if not config.api_key_secret:
        return config
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(config.api_key_secret).get()
    except ValueError as exc:  # no such block
        from evoformer.llm import LLMAuthError

        raise LLMAuthError(
            f"cannot read the Secret block {config.api_key_secret!r} holding the LLM key: {exc}"
        ) from exc
    keyed = KeyedLLMConfig(**config.model_dump())
    keyed._key = str(value)
    return keyed
