"""Flow ``pipeline``: prepare the data, optionally synthesize training examples, evolve, compress
the top K, and write ``runs/<run-id>/report.html``. Every step is the flow of its own issue, run
here as a subflow in one run folder, so a failed pipeline resumes from the steps' caches."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from evoformer.config.pipeline import CompressionStep, PipelineParams, SynthesisStep  # noqa: F401  (declared in evoformer/config)
from flows.compress import CompressParams, compress
from flows.data import prepare_data
from flows.evolve import evolve, with_stable_run_id
from flows.synthesize import SynthesizeParams, synthesize


@flow(name="pipeline", log_prints=True)
def pipeline(params: PipelineParams = PipelineParams()) -> dict[str, Any]:
    """prepare_data → (synthesize) → evolve → compress top K; evolve and compress (re)write report.html."""
    logger = get_run_logger()
    evolve_params = with_stable_run_id(params.evolve).model_copy(deep=True)
    evolve_params.compress.mode = "off"  # compression is this pipeline's own step
    real_data = evolve_params.data.model_copy(update={"augmented": None})
    data = prepare_data(real_data)
    if params.synthesis.enabled:
        step = params.synthesis
        synthetic = synthesize(
            SynthesizeParams(data=real_data, imports=step.imports, generation=step.generation, gates=step.gates)
        )
        evolve_params.data.augmented = synthetic["augmented"]["path"]
        logger.info(
            "evolving on the augmented training set %s (%d synthetic pairs kept)",
            synthetic["augmented"]["path"],
            synthetic["kept"],
        )
    evolved = evolve(evolve_params)
    compressed = None
    if params.compression.top_k > 0:
        step = params.compression
        compressed = compress(
            CompressParams(
                run_id=evolved["run_id"],
                top_k=step.top_k,
                config=step.config,
                limits=step.limits,
                storage=evolve_params.data.storage,
            )
        )
    report = (compressed or evolved)["report"]  # the last step rewrote it
    logger.info("report: %s", report)
    return {
        "run_id": evolved["run_id"],
        "run_dir": evolved["run_dir"],
        "report": report,
        "data": data,
        "synthesis": params.synthesis.enabled,
        "evolve": evolved,
        "compress": compressed,
    }
