"""Runs inside the sandbox: build, train and evaluate one candidate; write result.json + weights.

Usage (by the runner only): ``python -I -m evoformer.candidates.worker FOLDER``. The training
loop is ``evoformer.candidates.training``; the job protocol is ``evoformer.sandbox.protocol``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from evoformer.candidates.job import TrainJob, WorkerResult
from evoformer.candidates.training import run
from evoformer.sandbox.protocol import run_job


def main(folder: Path) -> int:
    return run_job(folder, TrainJob, run, WorkerResult)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
