"""``factory_field``: a pydantic field whose default comes from a factory and is also written into
the JSON schema.

Pydantic leaves a ``default_factory`` out of the schema, and Prefect's parameter forms take their
defaults from the schema, so a nested model or list made by a factory showed up empty ("No items
in this list") or with the nested model's own defaults instead of the parent's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter


def factory_field(factory: Callable[[], Any], **kwargs: Any) -> Any:
    """``Field(default_factory=factory, **kwargs)`` whose schema ``default`` is the factory's value (as JSON)."""
    value = factory()
    shown = (
        value.model_dump(mode="json")
        if isinstance(value, BaseModel)
        else TypeAdapter(Any).dump_python(value, mode="json")
    )
    extra = dict(kwargs.pop("json_schema_extra", None) or {}, default=shown)
    return Field(default_factory=factory, json_schema_extra=extra, **kwargs)
