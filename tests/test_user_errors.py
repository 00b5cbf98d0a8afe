"""Bad input is one clear message: exit status 2, the file named (and the line, where there is one),
and no traceback on stdout or stderr, from the real ``evoformer`` command running its Prefect flow.

Each case runs the console script against the session's test server (so no ephemeral server starts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # runs flows through the real CLI

CLIMATE_FEVER = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "climate-fever" / "climate-fever.jsonl"


@pytest.fixture(scope="module")
def cli_env(prefect_harness, tmp_path_factory) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ, PREFECT_API_URL=str(PREFECT_API_URL.value()), DO_NOT_TRACK="1")
    env.pop("EVOFORMER_DEBUG", None)
    env["EVOFORMER_RUNS"] = str(tmp_path_factory.mktemp("runs"))
    env["EVOFORMER_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return env


@pytest.fixture(scope="module")
def claims() -> list[dict]:
    with CLIMATE_FEVER.resolve().open() as handle:
        return [json.loads(next(handle)) for _ in range(40)]


def evoformer(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).with_name("evoformer")), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def assert_one_clear_message(done: subprocess.CompletedProcess, *must_contain: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    message = [line for line in done.stderr.splitlines() if line.startswith("evoformer: error:")]
    assert len(message) == 1, done.stderr[-3000:]
    for text in must_contain:
        assert text in message[0], message[0]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _data_cases(tmp: Path, claims: list[dict]) -> dict[str, tuple[Path, tuple[str, ...]]]:
    """name -> (file, what the message must name)."""
    cases: dict[str, tuple[Path, tuple[str, ...]]] = {}
    path = tmp / "not-utf8.jsonl"
    path.write_bytes(json.dumps(claims[0]).encode() + b"\n\xff\xfe not text\n")
    cases["non-utf8"] = (path, (f"{path}:2", "UTF-8"))
    path = tmp / "columns.csv"
    path.write_text("statement,label\nsea rises,SUPPORTS\n")
    cases["wrong csv columns"] = (path, (str(path), "missing column"))
    path = write_jsonl(tmp / "three.jsonl", claims[:3])
    cases["too few claims"] = (path, (str(path), "3 claims are too few"))
    one = [dict(c, evidences=[dict(e, evidence_label="SUPPORTS") for e in c["evidences"]]) for c in claims]
    path = write_jsonl(tmp / "one-class.jsonl", one)
    cases["one class"] = (path, (str(path), "at least two labels", "SUPPORTS: 200 pairs"))
    nested = [dict(c) for c in claims]
    nested[5] = dict(nested[5], evidences=[{"evidence": 3}])
    path = write_jsonl(tmp / "nested.jsonl", nested)
    cases["broken nested field"] = (path, (f"{path}:6", "evidence"))
    path = tmp / "corrupt.parquet"
    path.write_bytes(b"PAR1 this is not a parquet file")
    cases["corrupt parquet"] = (path, (str(path), "parquet"))
    unknown = [dict(c) for c in claims]
    unknown[2] = dict(unknown[2], evidences=[dict(unknown[2]["evidences"][0], evidence_label="MAYBE")])
    path = write_jsonl(tmp / "unknown-label.jsonl", unknown)
    cases["unknown label"] = (path, (f"{path}:3", "unknown label 'MAYBE'"))
    empty = [dict(c) for c in claims]
    empty[3] = dict(empty[3], claim="   ")
    path = write_jsonl(tmp / "empty-claim.jsonl", empty)
    cases["empty claim"] = (path, (f"{path}:4", "claim"))
    return cases


DATA_CASES = [
    "non-utf8",
    "wrong csv columns",
    "too few claims",
    "one class",
    "broken nested field",
    "corrupt parquet",
    "unknown label",
    "empty claim",
]


@pytest.mark.parametrize("case", DATA_CASES)
def test_malformed_data_is_one_clear_message(case: str, cli_env, claims, tmp_path: Path) -> None:
    path, expected = _data_cases(tmp_path, claims)[case]
    assert_one_clear_message(evoformer(cli_env, "data", "--source", str(path), "--no-progress"), *expected)


def _seed_folder(tmp: Path, case: str) -> tuple[Path, tuple[str, ...]]:
    folder = tmp / "seeds"
    folder.mkdir()
    if case == "syntax error":
        path = folder / "broken.py"
        path.write_text("import torch\n\ndef build_model(input_dim, num_classes):\n    return (\n")
        return folder, (str(path), "line 4", "syntax error")
    if case == "no build_model":
        path = folder / "nameless.py"
        path.write_text("import torch.nn as nn\n\ndef make(input_dim, num_classes):\n    return nn.Linear(1, 1)\n")
        return folder, (str(path), "build_model")
    if case == "binary":
        path = folder / "binary.py"
        path.write_bytes(b"\x7fELF\x00\x01\xff\xfe\x00")
        return folder, (str(path), "UTF-8")
    return folder, (str(folder), "no seed programs")


@pytest.mark.parametrize("case", ["syntax error", "no build_model", "binary", "empty folder"])
def test_broken_seed_folder_is_one_clear_message(case: str, cli_env, tmp_path: Path) -> None:
    folder, expected = _seed_folder(tmp_path, case)
    done = evoformer(cli_env, "evolve", "--seed-folder", str(folder), "--generations", "0", "--no-progress")
    assert_one_clear_message(done, *expected)


def test_broken_prelude_is_reported_as_the_prelude(cli_env, tmp_path: Path) -> None:
    prelude = tmp_path / "helpers.py"
    prelude.write_text("import torch\n\ndef masked_mean(x, mask:\n    return x\n")
    done = evoformer(cli_env, "evolve", "--prelude", str(prelude), "--generations", "0", "--no-progress")
    assert_one_clear_message(done, f"prelude {prelude}", "line 3", "syntax error")
    assert "<candidate>" not in done.stderr


def test_debug_shows_the_traceback(cli_env, tmp_path: Path) -> None:
    path = tmp_path / "columns.csv"
    path.write_text("statement,label\nsea rises,SUPPORTS\n")
    done = evoformer(cli_env, "data", "--source", str(path), "--no-progress", "--debug")
    assert done.returncode == 2 and "Traceback" in done.stderr and "missing column" in done.stderr
