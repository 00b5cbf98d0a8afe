"""Prefect task that writes a run's ``report.html`` and links it as an artifact."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from evoformer.run_files import file_link_markdown
from evoformer.run_report import write_report


@task(name="write-report", cache_policy=NO_CACHE)
def write_report_task(run_dir: str) -> str:
    """(Re)write ``runs/<id>/report.html`` from the run folder; publish a link to it (its http URL
    when the runs folder is served, else its path)."""
    path = write_report(Path(run_dir)).resolve()
    create_markdown_artifact(
        key="run-report",
        markdown=file_link_markdown(path, "Run report (HTML)"),
        description=(
            "Leaderboard, Pareto plot, lineage, best programs with diffs, compression, data and baselines of "
            f"{Path(run_dir).name}."
        ),
    )
    return str(path)
