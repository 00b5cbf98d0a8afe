"""Prefect deployments of the flows, declared here in Python only (there is no prefect.yaml).

- ``python -m deployments.evolve`` serves ``evolve-nightly``, ``compress``, ``pipeline`` and
  ``retrain`` from this process (no work pool needed);
- ``python -m deployments.register`` registers the same four on the ``evoformer-process`` work
  pool (what ``prefect deploy --all`` did), for ``prefect worker start --pool evoformer-process``.

Parameters come from ``configs/*.yaml``: ``configs/nightly.yaml`` for evolve, ``configs/demo.yaml``
for the pipeline.
"""

WORK_POOL = "evoformer-process"
