"""The Prefect run forms read well: what users change first comes first, sections are titled after
their parameter and described, no label means two things in one form, and every field says what it
does in plain text.

Each form is walked as the UI renders it from the deployment's parameter schema: a property's
``$ref`` is merged under the property's own keys (its title and description win over the
definition's), and a model's fields are sorted by ``position`` (the V2 UI sorts by ``position ?? 0``,
the V1 UI by ``position ?? Infinity``, both stably: without positions, the schema's order).
Add a deployment to ``DEPLOYMENTS`` (or a flow without one to ``FLOWS``) and every check covers
its form.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

import flows  # noqa: F401  (telemetry off before Prefect loads)
from deployments.compress import compress_deployment
from deployments.evolve import evolve_deployment
from deployments.pipeline import pipeline_deployment
from flows.data import prepare_data
from flows.synthesize import synthesize
from flows.train import train_program

DEPLOYMENTS: list[Callable[[], Any]] = [evolve_deployment, compress_deployment, pipeline_deployment]
FLOWS: list[Any] = [prepare_data, train_program, synthesize]  # no deployment, but a form once deployed

MARKUP = re.compile(r"`|:[a-z]+:|\*\*")  # rst literals and roles, markdown code and bold
CLASS_NAME = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+$")  # TrainConfig, LLMConfig, SandboxLimits


@dataclass(frozen=True)
class FormField:
    """One field or section of a form, as the UI shows it."""

    path: str  # params.train.time_budget_s
    label: str
    description: str
    owner: str  # the model that declares it (its definition's name)
    section: bool
    positioned: bool  # has a `position`, so both UIs order it the same way


def deployment_schema(deployment: Any) -> dict[str, Any]:
    """The parameter schema a deployment registers (RunnerDeployment.apply sends exactly this)."""
    return deployment._parameter_openapi_schema.model_dump(exclude_unset=True)


def _definition(schema: dict[str, Any], ref: str) -> tuple[str, dict[str, Any]]:
    name = ref.rsplit("/", 1)[-1]
    return name, schema["definitions"][name]


def _resolved(schema: dict[str, Any], prop: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The property as the UI merges it: definition first, the property's own keys over it."""
    if "$ref" not in prop:
        return None, prop
    name, definition = _definition(schema, prop["$ref"])
    return name, {**definition, **{key: value for key, value in prop.items() if key != "$ref"}}


def _models_inside(schema: dict[str, Any], prop: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Models reached through an optional (anyOf) or a list (items) rather than directly."""
    for option in [*prop.get("anyOf", []), *prop.get("oneOf", []), prop.get("items") or {}]:
        if "$ref" in option:
            yield _definition(schema, option["$ref"])


def form_fields(schema: dict[str, Any]) -> list[FormField]:
    """Every field and section of a parameter schema, in the order the UI renders them."""
    fields: list[FormField] = []

    def walk(model: dict[str, Any], owner: str, prefix: str) -> None:
        ordered = sorted(model.get("properties", {}).items(), key=lambda item: item[1].get("position", 0))
        for name, raw in ordered:
            definition, prop = _resolved(schema, raw)
            path = f"{prefix}{name}"
            nested = "properties" in prop
            fields.append(
                FormField(
                    path=path,
                    label=prop.get("title", name),
                    description=prop.get("description", ""),
                    owner=owner,
                    section=nested,
                    positioned="position" in raw,
                )
            )
            if nested:
                walk(prop, definition or owner, f"{path}.")
            for inner_name, inner in _models_inside(schema, prop):
                walk(inner, inner_name, f"{path}.")

    walk(schema, "Parameters", "")
    return fields


def forms(
    deployments: list[Callable[[], Any]], flow_list: Sequence[Any] = ()
) -> list[tuple[str, list[FormField], set[str]]]:
    """(name, its fields in UI order, the names of its schema's definitions) per deployment, then per
    flow (the schema Prefect builds for a flow's deployments, ``flow.parameters``)."""
    schemas = [(deployment.name, deployment_schema(deployment)) for deployment in (make() for make in deployments)]
    schemas += [(flow.name, flow.parameters.model_dump(exclude_unset=True)) for flow in flow_list]
    return [(name, form_fields(schema), set(schema.get("definitions", {}))) for name, schema in schemas]


FORMS = forms(DEPLOYMENTS, FLOWS)
IDS = [name for name, _, _ in FORMS]


def test_the_evolve_form_starts_with_what_users_change_first() -> None:
    fields = {field.path: field for field in dict(zip(IDS, FORMS, strict=True))["evolve-nightly"][1]}
    order = [path for path in fields if path.count(".") == 1]
    assert order[:6] == [
        "params.generations",
        "params.children",
        "params.operator",
        "params.train",
        "params.max_parallel",
        "params.data",
    ]

    def first_in(section: str) -> str:
        return next(
            path for path in fields if path.startswith(section + ".") and path.count(".") == section.count(".") + 1
        )

    assert first_in("params.operator") == "params.operator.kind"
    assert first_in("params.train") == "params.train.time_budget_s"
    assert first_in("params.data") == "params.data.data"
    assert first_in("params.data.data") == "params.data.data.source"
    assert fields["params.train.time_budget_s"].label == "Time budget per training (s)"
    assert fields["params.max_parallel"].label == "Trainings at once"


@pytest.mark.parametrize(("name", "fields", "classes"), FORMS, ids=IDS)
def test_every_property_has_a_position_so_both_uis_order_alike(name, fields, classes) -> None:
    assert [field.path for field in fields if not field.positioned] == []


@pytest.mark.parametrize(("name", "fields", "classes"), FORMS, ids=IDS)
def test_sections_are_titled_after_their_parameter_and_described(name, fields, classes) -> None:
    sections = [field for field in fields if field.section]
    assert sections
    for field in sections:
        assert field.label not in classes and not CLASS_NAME.match(field.label), (field.path, field.label)
        assert field.description.strip(), field.path


@pytest.mark.parametrize(("name", "fields", "classes"), FORMS, ids=IDS)
def test_no_label_means_two_things_in_one_form(name, fields, classes) -> None:
    """A label may repeat only for the same field of the same model shown in two sections (the
    training settings under Training and under Fine-tuning)."""
    meanings: dict[str, set[tuple[str, str]]] = defaultdict(set)
    paths: dict[str, list[str]] = defaultdict(list)
    for field in fields:
        meanings[field.label.casefold()].add((field.owner, field.path.rsplit(".", 1)[-1]))
        paths[field.label.casefold()].append(field.path)
    clashes = {label: paths[label] for label, owners in meanings.items() if len(owners) > 1}
    assert clashes == {}


@pytest.mark.parametrize(("name", "fields", "classes"), FORMS, ids=IDS)
def test_every_field_is_described_in_plain_text(name, fields, classes) -> None:
    assert [field.path for field in fields if not field.description.strip()] == []
    assert {field.path: field.description for field in fields if MARKUP.search(field.description)} == {}


def test_the_walk_sees_every_field() -> None:
    fields = dict(zip(IDS, FORMS, strict=True))["evolve-nightly"][1]
    leaves = [field for field in fields if not field.section]
    assert len(leaves) >= 100  # the whole evolve form, not just its first level
    assert "params.operator.llm.timeout_s" in {field.path for field in leaves}


def test_markup_is_stripped_but_its_text_kept() -> None:
    from evoformer.fields import plain_text

    assert plain_text("see :func:`evoformer.baselines.logreg_baseline`, ``max_iter`` and `joint`") == (
        "see evoformer.baselines.logreg_baseline, max_iter and joint"
    )


def test_form_order_leaves_the_field_order_and_dumps_alone() -> None:
    """The order is a schema position only: model_dump (YAML files, training_key's JSON) keeps
    definition order."""
    from evoformer.candidates.job import TrainConfig
    from evoformer.config import EvolveParams

    assert list(TrainConfig().model_dump())[:2] == ["max_epochs", "time_budget_s"]
    assert list(EvolveParams().model_dump())[:4] == ["generations", "children", "search_budget_s", "seed"]
    positions = TrainConfig.model_json_schema()["properties"]
    assert positions["time_budget_s"]["position"] == 0 and positions["max_epochs"]["position"] == 1
