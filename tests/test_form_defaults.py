"""The Prefect forms show the models' real defaults: a default made by a factory (a nested model,
a list) is written into the parameter schema the UI renders."""

from __future__ import annotations

from prefect.utilities.callables import parameter_schema


def test_the_compress_form_shows_compress_configs_defaults_lists_included() -> None:
    from evoformer.compression.config import CompressConfig
    from evoformer.config.compress import compress_limits
    from flows.compress import compress

    schema = parameter_schema(compress).model_dump()
    params = schema["definitions"]["CompressParams"]["properties"]
    assert params["config"]["default"] == CompressConfig().model_dump(mode="json")
    finetune = params["config"]["default"]["finetune"]
    assert (finetune["max_epochs"], finetune["time_budget_s"], finetune["learning_rate"], finetune["patience"]) == (
        3,
        90.0,
        3e-4,
        1,
    )
    assert params["limits"]["default"]["timeout_s"] == compress_limits().timeout_s == 1800.0
    config = schema["definitions"]["CompressConfig"]["properties"]
    assert config["sparsities"]["default"] == [0.5, 0.8] and config["quantizers"]["default"] == [
        "torch_ao",
        "onnxruntime",
    ]


def test_a_factory_default_is_still_fresh_per_instance() -> None:
    from evoformer.config.compress import CompressParams

    first, second = CompressParams(run_id="a"), CompressParams(run_id="b")
    first.config.sparsities.append(0.9)
    assert second.config.sparsities == [0.5, 0.8]


def test_the_evolve_form_shows_evolves_own_training_budget_and_threads() -> None:
    from evoformer.config.evolve import EvolveParams
    from flows.evolve import evolve

    params = parameter_schema(evolve).model_dump()["definitions"]["EvolveParams"]["properties"]
    assert params["train"]["default"]["time_budget_s"] == EvolveParams().train.time_budget_s == 120.0  # not 240
    assert params["limits"]["default"]["threads"] == EvolveParams().limits.threads == 1  # not 2
