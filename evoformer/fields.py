"""Field helpers for the models that Prefect renders as parameter forms.

- ``factory_field``: a pydantic field whose default comes from a factory and is also written into
  the JSON schema. Pydantic leaves a ``default_factory`` out of the schema, and Prefect's parameter
  forms take their defaults from the schema, so a nested model or list made by a factory showed up
  empty ("No items in this list") or with the nested model's own defaults instead of the parent's.
- ``form_schema``: a model's ``json_schema_extra`` that orders its form (a ``position`` per
  property) and turns its descriptions into plain text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter

# rst roles (:class:`x`, :func:`~a.b`), rst literals (``x``) and markdown code (`x`): both Prefect UIs
# print descriptions as plain text, so the markup showed as literal backticks.
_MARKUP = (
    (re.compile(r":[a-z]+:`~?([^`]+)`"), r"\1"),
    (re.compile(r"``([^`]+)``"), r"\1"),
    (re.compile(r"`([^`]+)`"), r"\1"),
)


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


def plain_text(text: str) -> str:
    """``text`` without rst roles, rst literals or markdown code spans (their content is kept)."""
    for pattern, replacement in _MARKUP:
        text = pattern.sub(replacement, text)
    return text


def form_schema(*first: str) -> Callable[[dict[str, Any], type], None]:
    """A ``json_schema_extra`` for ``model_config``: properties named in ``first`` come first in the
    Prefect form, in that order, the others after them in definition order; the model's and its
    properties' descriptions lose their markup.

    Order is a ``position`` on every property, which both Prefect UIs sort a form's fields by
    (without one, the schema's order, i.e. definition order). It leaves the class's field order,
    and so ``model_dump`` and every key made from it, unchanged.
    """

    def extra(schema: dict[str, Any], cls: type) -> None:
        if "description" in schema:
            schema["description"] = plain_text(schema["description"])
        properties: dict[str, Any] = schema.get("properties", {})
        unknown = set(first) - set(properties)
        if unknown:  # a renamed field would silently drop out of the order
            raise ValueError(f"{cls.__name__}: form_schema names no such field {sorted(unknown)}")
        order = [*first, *(name for name in properties if name not in first)]
        for position, name in enumerate(order):
            properties[name]["position"] = position
            if "description" in properties[name]:
                properties[name]["description"] = plain_text(properties[name]["description"])

    return extra
