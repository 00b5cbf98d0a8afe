"""The pipeline flow end to end on a small real fixture (offline): data, synthesis from crafted
files, evolution, compression of the best candidate, and a self-contained report.html linked as
an artifact; then the report's parts on their own."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import test_synthetic_flow
from test_cli import run_main
from test_evolve_flow import TINY_SEED

# The fixture, bound here so that pytest finds it for this module's tests.
synthetic_folder = test_synthetic_flow.synthetic_folder

pytestmark = pytest.mark.integration  # trains in the sandbox, runs flows or starts servers


def test_pipeline_runs_every_step_and_writes_the_report(
    prefect_harness,
    small_climate_fever,
    feature_cache_dir,
    synthetic_folder,
    tmp_path,
) -> None:
    from test_compression_flow import SMALL
    from test_evolve_flow import FAST_TRAIN, evolve_params

    from evoformer.evolution.population import SelectionConfig
    from evoformer.synthetic.gates import GateConfig
    from evoformer.synthetic.importer import ImportConfig
    from flows.pipeline import CompressionStep, PipelineParams, SynthesisStep, pipeline

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "tiny.py").write_text(TINY_SEED)
    (seeds / "tiny_wide.py").write_text(TINY_SEED.replace("hidden: int = 32", "hidden: int = 64"))
    evolve = evolve_params(
        small_climate_fever,
        feature_cache_dir,
        tmp_path / "runs",
        seeds,
        "pipe",
        generations=1,
        children=2,
        max_parallel=1,
        selection=SelectionConfig(crossover_rate=0.0),
        train=FAST_TRAIN.model_copy(update={"max_epochs": 1}),
    )
    params = PipelineParams(
        evolve=evolve,
        synthesis=SynthesisStep(
            enabled=True, imports=ImportConfig(paths=[str(synthetic_folder)]), gates=GateConfig(verify="none")
        ),
        compression=CompressionStep(
            top_k=1, config=SMALL.model_copy(update={"sparsities": [], "quantizers": ["onnxruntime"]})
        ),
    )
    summary = pipeline(params)
    run_dir = Path(summary["run_dir"])
    recorded = json.loads((run_dir / "summary.json").read_text())

    # Synthesis ran first, and evolve trained on its augmented set (val/test unchanged).
    assert recorded["synthetic"]["kept"] >= 1
    assert recorded["augmented"]["path"] == recorded["synthetic"]["augmented"]["path"]
    assert recorded["splits"]["train"]["pairs"] > summary["data"]["splits"]["train"]["pairs"]
    assert recorded["splits"]["val"] == summary["data"]["splits"]["val"]
    # Evolution, then compression of its best candidate.
    best = summary["evolve"]["best"]["id"]
    (compressed,) = summary["compress"]["candidates"]
    assert compressed["candidate"] == best and compressed["status"] == "ok", compressed["reason"]
    assert {row["variant"].rstrip(" *") for row in compressed["table"]} >= {
        "fp32",
        "int8-onnxruntime",
        "structured-50%",
    }

    # The report: self-contained, with every part the issue names.
    report = Path(summary["report"])
    assert report == (run_dir / "report.html").resolve() and report.is_file()
    html = report.read_text()
    for heading in ("Data and baselines", "Leaderboard", "Pareto plot", "Lineage", "Best programs", "Compression"):
        assert f"<h2>{heading}</h2>" in html, heading
    assert "majority" in html and "data:image/png;base64," in html
    assert not re.search(r"""(src|href)=['"]https?://""", html), "no external resources"
    lineage = json.loads((run_dir / "lineage.json").read_text())
    for row in lineage:
        assert f"<b>{row['id']}</b>" in html  # every candidate is in the lineage tree
    assert all(row["operator"] in html for row in lineage)
    full = [r for r in lineage if r["status"] == "ok" and r["val_macro_f1"] is not None]  # not the screened
    top = sorted(full, key=lambda r: (-r["val_macro_f1"], r["params"]))[:3]
    for row in top:  # the best programs, each diffed against its parents
        assert f"<h3>{row['id']} — fitness" in html
        for parent in row["parents"]:
            assert f"--- {parent}.py" in html and f"+++ {row['id']}.py" in html
    assert any(row["parents"] for row in top), "a trained child is among the three best"
    assert f'<td class="l">{compressed["table"][0]["variant"]}</td>' in html

    # The artifact names the report (by path: no file server runs here).
    import asyncio

    from prefect.client.orchestration import get_client

    async def report_links():
        async with get_client() as client:
            return [a.data for a in await client.read_artifacts() if a.key == "run-report"]

    assert any(f"`{report.resolve()}`" in str(link) for link in asyncio.run(report_links()))


def test_pipeline_command_prints_where_the_report_is(
    prefect_harness, small_climate_fever, feature_cache_dir, tmp_path
) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "tiny.py").write_text(TINY_SEED)
    code, out, err = run_main(
        [
            "pipeline",
            "--generations",
            "0",
            "--compress-top",
            "0",
            "--seed-folder",
            str(seeds),
            "--max-epochs",
            "1",
            "--latency-repeats",
            "3",
            "--source",
            str(small_climate_fever),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--cache-dir",
            str(feature_cache_dir),
            "--run-id",
            "cli-pipe",
            "--no-progress",
        ]
    )
    assert code == 0, err
    report = tmp_path / "runs" / "cli-pipe" / "report.html"
    assert f"report: {report.resolve()}" in out and report.is_file()
    assert "split   pairs  claims" in out and "majority" in out and "seed-tiny" in out  # data, baselines, leaderboard
    assert "seed-tiny" in report.read_text()
