"""Register the deployments on a work pool (what ``prefect deploy --all`` with a prefect.yaml did).

    prefect work-pool create evoformer-process --type process   # once
    python -m deployments.register [--pool evoformer-process]
    prefect worker start --pool evoformer-process

The code is pulled from this checkout (its folder is the working directory of each flow run, as
``set_working_directory`` did), so the worker runs on a machine with the project at the same path.
Names, parameters, tags and descriptions are those of the served deployments (``deployments/*.py``,
parameters from ``configs/*.yaml``); the nightly schedule is created inactive, as before.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import flows  # noqa: F401  (telemetry off before Prefect loads)
from deployments import WORK_POOL

ROOT = Path(__file__).resolve().parents[1]


def work_pool_deployments(pool: str = WORK_POOL, root: Path = ROOT) -> list:
    """The four deployments for ``pool``, with the flows loaded from ``root`` (not yet applied)."""
    from prefect.schedules import Cron

    from deployments import compress as compress_module
    from deployments import evolve as evolve_module
    from deployments import pipeline as pipeline_module
    from deployments import retrain as retrain_module
    from flows.compress import compress
    from flows.evolve import evolve
    from flows.pipeline import pipeline
    from flows.retrain import retrain

    def from_here(flow, module, **extra):
        return flow.from_source(str(root), module.ENTRYPOINT).to_deployment(
            work_pool_name=pool, **module.deployment_settings(), **extra
        )

    return [
        from_here(evolve, evolve_module, schedules=[Cron(evolve_module.CRON, timezone="UTC", active=False)]),
        from_here(compress, compress_module),
        from_here(pipeline, pipeline_module),
        from_here(retrain, retrain_module),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", default=WORK_POOL, help=f"work pool name (default: {WORK_POOL})")
    args = parser.parse_args()
    from prefect import deploy

    deploy(*work_pool_deployments(args.pool), work_pool_name=args.pool, build=False, push=False, ignore_warnings=True)


if __name__ == "__main__":
    main()
