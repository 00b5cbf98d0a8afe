"""The disk quota: a sandboxed process cannot fill the disk, whichever mechanism holds the quota.

``tmpfs``: the kernel (bubblewrap, a size-limited tmpfs as the sandbox's root). ``watchdog-bwrap``:
bubblewrap, with the private root forced off, so the supervisor watches the real folder.
``watchdog``: no bubblewrap at all (forced). Small caps (20 MiB, 50 files) keep the tests fast.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import candidate_source

from evoformer.baselines import label_ids
from evoformer.candidates.evaluate import evaluate_candidate
from evoformer.candidates.job import TrainConfig
from evoformer.candidates.program import CandidateProgram
from evoformer.sandbox import runner
from evoformer.sandbox.disk import MIB, private_root_problem
from evoformer.sandbox.isolation import bubblewrap_problem
from evoformer.sandbox.limits import SandboxLimits
from evoformer.sandbox.runner import run_sandboxed

pytestmark = pytest.mark.integration  # trains in the sandbox, runs flows or starts servers

CAP_MB, CAP_FILES = 20, 50
SMALL = SandboxLimits(timeout_s=60, max_disk_mb=CAP_MB, max_files=CAP_FILES)
FAST = TrainConfig(max_epochs=1, max_train_pairs=64, latency_repeats=3)
MECHANISMS = ["tmpfs", "watchdog-bwrap", "watchdog"]

# Writes 1 MiB files until stopped (about 200 MiB/s: far past the cap within one watchdog look).
MANY_LARGE_FILES = """
import time
for i in range(10_000):
    with open(f"big{i}.bin", "wb") as handle:
        handle.write(b"x" * 2**20)
    time.sleep(0.005)
"""
MANY_TINY_FILES = """
for i in range(1_000_000):
    open(f"tiny{i}", "w").close()
"""


@pytest.fixture(params=MECHANISMS)
def mechanism(request, monkeypatch) -> str:
    if request.param == "tmpfs":
        if private_root_problem():
            pytest.skip(private_root_problem())
    elif request.param == "watchdog-bwrap":
        if bubblewrap_problem():
            pytest.skip(bubblewrap_problem())
        monkeypatch.setattr(runner, "private_root_problem", lambda: "forced off for this test")
    else:
        monkeypatch.setattr(runner, "bubblewrap_problem", lambda: "bwrap disabled for this test")
    return request.param


@pytest.fixture
def tmpfs(monkeypatch) -> None:
    if private_root_problem():
        pytest.skip(private_root_problem())


def _script(tmp_path: Path, code: str, limits: SandboxLimits = SMALL, outputs: list[str] | None = None):
    folder = tmp_path / "box"
    folder.mkdir()
    (folder / "script.py").write_text(textwrap.dedent(code))
    return run_sandboxed("evoformer.sandbox.script", folder, limits, outputs=outputs), folder


def _left(folder: Path, inputs: set[str]) -> tuple[int, int, int]:
    """Bytes, files and the largest file the run left in ``folder`` (inputs and metrics excluded)."""
    files = [p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).parts[0] not in inputs]
    sizes = [p.stat().st_size for p in files]
    return sum(sizes), len(sizes), max(sizes, default=0)


def _assert_at_most_cap_plus_one_file(folder: Path, inputs: set[str]) -> None:
    total, files, largest = _left(folder, inputs)
    assert total <= CAP_MB * MIB + largest and files <= CAP_FILES + 1, (total, files)


def test_many_large_files_are_stopped_at_the_byte_cap(tmp_path, mechanism) -> None:
    run, folder = _script(tmp_path, MANY_LARGE_FILES)
    assert run.disk_quota and "disk quota exceeded" in run.disk_quota and "MiB written" in run.disk_quota, run
    assert run.disk_guard == ("tmpfs" if mechanism == "tmpfs" else "watchdog")
    assert f"disk-quota({run.disk_guard})" in run.isolation
    assert run.disk_bytes > CAP_MB * MIB and run.wall_s < 30  # stopped, not finished: 10,000 files take 50 s
    assert sorted(p.name for p in folder.iterdir()) == ["script.py"]  # nothing it wrote is left
    _assert_at_most_cap_plus_one_file(folder, {"script.py"})


def test_many_tiny_files_are_stopped_at_the_file_cap(tmp_path, mechanism) -> None:
    run, folder = _script(tmp_path, MANY_TINY_FILES)
    assert run.disk_quota and "disk quota exceeded" in run.disk_quota, run
    assert f"more than {CAP_FILES} files" in run.disk_quota
    assert run.wall_s < 30
    assert sorted(p.name for p in folder.iterdir()) == ["script.py"]
    _assert_at_most_cap_plus_one_file(folder, {"script.py"})


def test_within_the_quota_only_the_outputs_are_kept(tmp_path, mechanism) -> None:
    code = """
    import os
    open("result.json", "w").write("{}")
    os.mkdir("variants")
    open("variants/a.onnx", "wb").write(b"a" * 1000)
    open("junk.bin", "wb").write(b"j" * 1000)
    os.symlink("/etc/hostname", "variants/link.onnx")
    """
    run, folder = _script(tmp_path, code, outputs=["result.json", "variants/*"])
    assert run.returncode == 0 and run.disk_quota is None, run.stderr_tail
    left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    assert left == ["result.json", "script.py", "variants", "variants/a.onnx"]
    assert (folder / "variants" / "a.onnx").read_bytes() == b"a" * 1000
    assert 0 < run.disk_files <= 6


def test_tmp_and_the_rest_of_the_root_count_towards_the_same_quota(tmp_path, tmpfs) -> None:
    """12 MiB in /tmp and 12 MiB in a folder of its own making: 24 MiB, over the 20 MiB cap."""
    code = """
    import os, time
    os.makedirs("/elsewhere")
    for path in ("/tmp/a.bin", "/elsewhere/b.bin"):
        with open(path, "wb") as handle:
            handle.write(b"x" * 12 * 2**20)
    time.sleep(5)
    """
    run, folder = _script(tmp_path, code)
    assert run.disk_quota and "MiB written" in run.disk_quota, (run.disk_bytes, run.stderr_tail)


def test_a_deleted_open_file_counts(tmp_path, tmpfs) -> None:
    code = """
    import os, time
    handle = open("hidden.bin", "wb")
    os.unlink("hidden.bin")
    try:
        for _ in range(30):
            handle.write(b"x" * 2**20)
            handle.flush()
    except OSError as exc:
        print("refused:", exc, flush=True)
    time.sleep(5)
    """
    run, folder = _script(tmp_path, code)
    assert "No space left on device" in run.stdout_tail  # the kernel held the cap
    assert run.disk_quota and "MiB written" in run.disk_quota


def test_a_symlinked_output_folder_is_not_followed(tmp_path, tmpfs) -> None:
    """The outputs are copied out of the sandbox through no symlink: a link to a host folder
    (which would resolve on the host, outside the sandbox) copies nothing."""
    host = tmp_path / "host-secrets"
    host.mkdir()
    (host / "secret.onnx").write_text("host file")
    code = f"import os\nos.symlink({str(host)!r}, 'variants')\nopen('result.json', 'w').write('{{}}')\n"
    run, folder = _script(tmp_path, code, outputs=["result.json", "variants/*"])
    assert run.disk_quota is None, run.stderr_tail
    assert sorted(p.name for p in folder.iterdir()) == ["result.json", "script.py"]


def test_the_inputs_are_read_only_inside(tmp_path, tmpfs) -> None:
    code = """
    for action in (lambda: open("script.py", "a").write("#"), lambda: __import__("os").unlink("script.py")):
        try:
            action()
            print("CHANGED", flush=True)
        except OSError as exc:
            print("refused", exc.errno, flush=True)
    """
    run, folder = _script(tmp_path, code)
    assert "CHANGED" not in run.stdout_tail and run.stdout_tail.count("refused") == 2, run.stdout_tail


@pytest.fixture(scope="module")
def labels(small_splits) -> dict[str, np.ndarray]:
    return {name: label_ids(frame["label"]) for name, frame in small_splits.frames.items()}


HOSTILE = """
import time
for i in range(10_000):
    torch.save(torch.ones(2**18), f"junk{i}.pt")  # 1 MiB each
    time.sleep(0.005)
return M(input_dim, num_classes)
"""


@pytest.mark.parametrize("mechanism", ["tmpfs", "watchdog"], indirect=True)
def test_a_candidate_over_its_quota_is_killed_and_the_next_one_trains(
    small_features, labels, tmp_path, mechanism
) -> None:
    hostile = CandidateProgram(name="filler", source=candidate_source(HOSTILE))
    result = evaluate_candidate(
        hostile, small_features.path, labels, tmp_path / "filler", FAST, SMALL, static_check=False
    )
    assert result.status == "killed" and "disk quota exceeded" in result.reason, result.reason + result.stderr_tail
    assert result.transient
    inputs = {"program.py", "job.json", "train_labels.npy", "metrics.json"}
    assert {p.name for p in (tmp_path / "filler").iterdir()} == inputs
    _assert_at_most_cap_plus_one_file(tmp_path / "filler", inputs)

    valid = CandidateProgram(name="valid", source=candidate_source("return M(input_dim, num_classes)"))
    result = evaluate_candidate(valid, small_features.path, labels, tmp_path / "valid", FAST, SMALL)
    assert result.status == "ok", result.reason + result.stderr_tail
    assert {p.name for p in (tmp_path / "valid").iterdir()} == inputs | {"result.json", "weights.safetensors"}


def test_the_compression_worker_has_the_same_quota(small_features, labels, tmp_path) -> None:
    """A program that fills the disk while the compression worker builds it: killed, nothing left."""
    import json

    from evoformer.compression.config import CompressConfig
    from evoformer.compression.evaluate import compress_candidate

    trained = tmp_path / "trained"
    trained.mkdir()
    (trained / "program.py").write_text(candidate_source(HOSTILE))
    (trained / "weights.safetensors").write_bytes(b"\0" * 8)
    (trained / "metrics.json").write_text(json.dumps({"status": "ok"}))
    config = CompressConfig(
        sparsities=[], structured_ratios=[], quantizers=["torch_ao"], onnx_fp32=False, finetune=FAST, latency_repeats=3
    )
    report = compress_candidate(trained, small_features.path, labels, tmp_path / "compressed", config, SMALL)
    assert report.status == "killed" and "disk quota exceeded" in report.reason, report.reason + report.stderr_tail
    left = {p.name for p in (tmp_path / "compressed").iterdir()}
    assert left <= {"program.py", "weights.safetensors", "train_labels.npy", "job.json", "compression.json"}


def test_the_worker_names_a_full_disk() -> None:
    """A write refused for space counts as 'killed' for the disk quota, whoever caught it."""
    import errno

    from evoformer.sandbox.protocol import disk_outcome, limit_outcome

    outcome = disk_outcome(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert outcome.status == "killed" and "disk quota" in outcome.reason
    assert limit_outcome(MemoryError()).status == "killed"
    assert disk_outcome(ValueError("other")) is None


def test_default_limits_are_documented() -> None:
    limits = SandboxLimits()
    assert (limits.max_disk_mb, limits.max_files) == (2048, 2000)
    doc = (Path(__file__).resolve().parents[1] / "docs" / "sandbox.md").read_text()
    assert "## Disk quota" in doc and "max_disk_mb" in doc and "max_files" in doc
