"""The ``evoformer`` command line: options derived from the parameter models (--config, dotted
overrides, the old flags as aliases), help without the heavy imports, and ``evoformer data``: JSON
summary, errors, no third-party warnings, ephemeral Prefect and a real server."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from flows.cli import main, parse

pytestmark = pytest.mark.integration  # trains in the sandbox, runs flows or starts servers

# Prefect's console handler keeps the sys.stderr it was created with, so pytest's capsys (whose
# streams are closed after each test) cannot be used here; redirect into our own buffers instead.


def run_main(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


REQUIRED_KEYS = [
    ("splits", "train", "pairs"),
    ("splits", "train", "claims"),
    ("splits", "val", "pairs"),
    ("splits", "val", "claims"),
    ("splits", "test", "pairs"),
    ("splits", "test", "claims"),
    ("claim_overlap",),
    ("fingerprints",),
    ("features_path",),
    ("baselines", "majority", "val", "macro_f1"),
    ("baselines", "majority", "test", "macro_f1"),
    ("baselines", "logreg", "val", "macro_f1"),
    ("baselines", "logreg", "test", "macro_f1"),
]


def _dig(obj: dict, path: tuple[str, ...]):
    for key in path:
        obj = obj[key]
    return obj


def _check_summary(summary: dict) -> None:
    for path in REQUIRED_KEYS:
        _dig(summary, path)
    assert summary["claim_overlap"] == 0
    assert set(summary["fingerprints"]) == {"train", "val", "test"}


def test_data_json_in_process(prefect_harness, small_climate_fever, feature_cache_dir, tmp_path) -> None:
    args = [
        "data",
        "--source",
        str(small_climate_fever),
        "--runs-dir",
        str(tmp_path),
        "--cache-dir",
        str(feature_cache_dir),
        "--run-id",
        "cli",
        "--no-progress",
        "--json",
    ]
    code, out, _ = run_main(args)
    assert code == 0
    summary = json.loads(out)
    _check_summary(summary)
    assert summary["run_dir"] == str((tmp_path / "cli").resolve())
    assert (tmp_path / "cli" / "summary.json").is_file()


def test_human_output_shows_majority_line(prefect_harness, small_climate_fever, feature_cache_dir, tmp_path) -> None:
    code, out, _ = run_main(
        [
            "data",
            "--source",
            str(small_climate_fever),
            "--runs-dir",
            str(tmp_path),
            "--cache-dir",
            str(feature_cache_dir),
            "--no-progress",
        ]
    )
    assert code == 0
    assert "claim overlap between splits: 0" in out
    assert any(line.startswith("majority   test") for line in out.splitlines())
    assert any(line.startswith("logreg     test") for line in out.splitlines())


def test_bad_source_exits_2_with_message(prefect_harness, tmp_path) -> None:
    code, _, err = run_main(["data", "--source", str(tmp_path / "nope.csv"), "--runs-dir", str(tmp_path)])
    assert code == 2
    assert "does not exist" in err


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


KNOWN_NOISE = ("torchao", "_pytree", "triton")  # what importing torchao printed on every command


def _cli(tmp_path: Path, source: Path, cache: Path, env: dict[str, str]) -> dict:
    exe = Path(sys.executable).with_name("evoformer")
    cmd = [
        str(exe),
        "data",
        "--source",
        str(source),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--cache-dir",
        str(cache),
        "--no-progress",
        "--json",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    noisy = [line for line in done.stderr.splitlines() if any(word in line.lower() for word in KNOWN_NOISE)]
    assert noisy == [], noisy  # no third-party warning on stderr
    return json.loads(done.stdout)


def test_console_script_with_ephemeral_prefect_prints_no_third_party_warnings(small_climate_fever, tmp_path) -> None:
    # A fresh feature cache: the encoder loads (and transformers imports torchao) in this very run.
    summary = _cli(tmp_path, small_climate_fever, tmp_path / "fresh-cache", _clean_env(tmp_path))
    _check_summary(summary)
    assert summary["features_cached"] is False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_console_script_against_prefect_server(small_climate_fever, feature_cache_dir, tmp_path) -> None:
    env = _clean_env(tmp_path)
    port = _free_port()
    prefect = Path(sys.executable).with_name("prefect")
    server = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, "prefect server exited"
            assert time.monotonic() < deadline, "prefect server did not become healthy in 120 s"
            time.sleep(1)
        summary = _cli(tmp_path, small_climate_fever, feature_cache_dir, dict(env, PREFECT_API_URL=api))
        _check_summary(summary)
        request = urllib.request.Request(
            f"{api}/flow_runs/filter", data=b"{}", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            runs = json.loads(response.read())
        assert [r["state_type"] for r in runs] == ["COMPLETED"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


# -- options derived from the models -----------------------------------------------------------------


def test_config_file_and_dotted_override_give_the_expected_params(tmp_path) -> None:
    from evoformer.config import EvolveParams

    config = tmp_path / "run.yaml"
    config.write_text(
        "generations: 5\nchildren: 3\ntrain:\n  max_epochs: 4\n  time_budget_s: 60\noperator:\n  kind: offline\n"
    )
    params, as_json = parse(
        "evolve", ["--train.time_budget_s", "30", "--config", str(config), "--data.split.seed", "7", "--json"]
    )
    expected = EvolveParams(
        generations=5,
        children=3,
        operator={"kind": "offline"},
        data={"split": {"seed": 7}},
        train=EvolveParams().train.model_copy(update={"max_epochs": 4, "time_budget_s": 30.0}),
    )
    assert params == expected and as_json  # options win over the file, wherever they stand
    # An alias is its dotted option; a partial section keeps the parent's defaults (120 s, not TrainConfig's 240 s).
    assert parse("evolve", ["--time-budget", "30"])[0].train.time_budget_s == 30.0
    assert parse("evolve", ["--train.max_epochs", "2"])[0].train.time_budget_s == 120.0


def test_the_old_flags_are_aliases_of_dotted_options() -> None:
    params = parse(
        "pipeline",
        [
            "--generations",
            "2",
            "--children",
            "4",
            "--time-budget",
            "30",
            "--compress-top",
            "1",
            "--temperatures",
            "0.3",
            "0.7",
            "--no-progress",
            "--skip-bad-rows",
            "--ratios",
            "0.7",
            "0.15",
            "0.15",
            "--compress-sparsities",
            "--compress-quantizers",
            "onnxruntime",
            "--synthesize",
        ],
    )[0]
    evolve = params.evolve
    assert (evolve.generations, evolve.children, evolve.train.time_budget_s, params.compression.top_k) == (
        2,
        4,
        30.0,
        1,
    )
    assert (
        evolve.operator.temperatures == [0.3, 0.7]
        and not evolve.data.progress
        and evolve.data.data.on_bad_rows == "skip"
    )
    assert (evolve.data.split.train, evolve.data.split.val) == (0.7, 0.15) and params.synthesis.enabled
    assert params.compression.config.sparsities == [] and params.compression.config.quantizers == ["onnxruntime"]
    compress = parse(
        "compress", ["--run", "r1", "--candidate", "a", "--candidate", "b", "--threads", "1", "--finetune-epochs", "1"]
    )[0]
    assert compress.run_id == "r1" and compress.candidates == ["a", "b"] and compress.config.threads == 1
    assert (
        compress.config.finetune.max_epochs == 1 and compress.config.finetune.learning_rate == 3e-4
    )  # the rest: its defaults
    train = parse("train", ["prog.py", "--prelude", "pre.py", "--lr", "0.01"])[0]
    assert (train.program_path, train.prelude_path, train.train.learning_rate) == ("prog.py", "pre.py", 0.01)
    synth = parse(
        "synth",
        ["--from-file", "a.json", "--gen-labels", "SUPPORTS", "REFUTES", "--llm-model", "m", "--near-dup", "0.9"],
    )[0]
    assert synth.imports.paths == ["a.json"] and synth.generation.labels == ["SUPPORTS", "REFUTES"]
    assert synth.generation.llm.model == "m" and synth.gates.near_duplicate_threshold == 0.9


def test_every_alias_names_an_option_of_its_model() -> None:
    from flows.cli.commands import COMMANDS, load
    from flows.cli.parser import build_parser

    for command in COMMANDS.values():
        parser = build_parser(load(command.model), command.name, "", command.aliases)
        dests = {action.dest for action in parser._actions}
        flags = [alias.flag for alias in command.aliases]
        assert len(flags) == len(set(flags)), command.name
        assert [t for alias in command.aliases for t in alias.targets if t not in dests] == [], command.name


def test_bad_options_exit_2_with_a_message(capsys) -> None:
    for argv, message in (
        (["compress"], "--run_id (--run): Field required"),
        (["evolve", "--ratios", "0.5", "0.5", "0.5"], "sum to 1"),
        (["evolve", "--children", "0"], "greater than or equal to 1"),
        (["evolve", "--ratios", "0.5"], "needs 3 values"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            parse(argv[0], argv[1:])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err, argv


def test_print_config_is_a_config_file(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse("evolve", ["--generations", "1", "--print_config"])
    assert exit_info.value.code == 0
    (tmp_path / "printed.yaml").write_text(capsys.readouterr().out)
    assert parse("evolve", ["--config", str(tmp_path / "printed.yaml")])[0].generations == 1


def test_help_loads_neither_torch_nor_prefect() -> None:
    code = (
        "import sys\nfrom flows.cli import main\n"
        "for argv in (['--help'], ['evolve', '--help'], ['pipeline', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit as e:\n"
        "        assert e.code == 0, argv\n"
        "print(sorted(m for m in ('torch', 'prefect', 'transformers', 'pandas', 'numpy', 'openai') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (
        "--train.time_budget_s" in done.stdout
        and "--time-budget" in done.stdout
        and "--config FILE.yaml" in done.stdout
    )


def test_retrain_parses_candidates_failed_and_overrides() -> None:
    params = parse(
        "retrain", ["--run", "r1", "--candidate", "g01-c02", "--all-failed", "--limits", '{"timeout_s": 1800}']
    )[0]
    assert (params.run_id, params.candidates, params.failed, params.limits) == (
        "r1",
        ["g01-c02"],
        True,
        {"timeout_s": 1800},
    )
