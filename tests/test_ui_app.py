"""The GUI's logic without training anything: run-folder views (ui/runs.py), the parameter models it
builds and the params files of local runs (ui/launch.py), the Secret-block key resolution
(flows/secret_key.py), the `evoformer ui` command line, and the Streamlit page through AppTest on a
hand-made run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evoformer.compression.evaluate import CompressionReport, VariantMetrics
from evoformer.evolution.population import Individual
from evoformer.metrics import ClassificationMetrics

pytestmark = pytest.mark.integration  # trains in the sandbox, runs flows or starts servers

APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")
PARENT = "import torch.nn as nn\n\n\ndef build_model(input_dim, num_classes):\n    return nn.Linear(input_dim, 32)\n"
CHILD = PARENT.replace("32", "16")


def _m(f1: float) -> ClassificationMetrics:
    return ClassificationMetrics(macro_f1=f1, weighted_f1=f1, accuracy=f1, per_class_f1={}, support=10)


def make_run(root: Path, run_id: str = "fake-run") -> Path:
    """A run folder as evolve and compress leave it: two seeds, three children (one failed, one stopped by
    the cascade), fitness over 3 folds, one compression."""
    run = root / run_id
    people = [
        Individual(
            id="seed-a",
            generation=0,
            operator="seed",
            status="ok",
            params=5000,
            val_macro_f1=0.40,
            fitness_se=0.01,
            fold_f1=[0.39, 0.41, 0.40],
            stage="full",
            test_macro_f1=0.38,
            retired=True,
        ),
        Individual(
            id="seed-b",
            generation=0,
            operator="seed",
            status="ok",
            params=2000,
            val_macro_f1=0.35,
            fitness_se=0.02,
            fold_f1=[0.33, 0.37, 0.35],
            stage="full",
            test_macro_f1=0.33,
        ),
        Individual(
            id="g01-c00",
            generation=1,
            parents=["seed-a"],
            operator="ast-mutation",
            status="ok",
            params=3000,
            val_macro_f1=0.42,
            fitness_se=0.0058,
            fold_f1=[0.41, 0.43, 0.42],
            stage="full",
            test_macro_f1=0.39,
        ),
        Individual(
            id="g01-c01",
            generation=1,
            parents=["seed-a", "seed-b"],
            operator="ast-crossover",
            status="build_error",
            reason="boom",
        ),
        Individual(
            id="g01-c02",
            generation=1,
            parents=["seed-b"],
            operator="ast-mutation",
            status="ok",
            stage="screened",
            params=900,
            screen_f1=0.30,
            reason="stopped by the cascade after stage 1",
        ),
    ]
    (run / "evolution").mkdir(parents=True)
    (run / "programs").mkdir()
    (run / "lineage.json").write_text(json.dumps([p.model_dump() for p in people]))
    (run / "evolution" / "state.json").write_text(
        json.dumps(
            {
                "settings_hash": "x",
                "operator": "offline",
                "completed_generation": 1,
                "individuals": [p.model_dump() for p in people],
            }
        )
    )
    for p in people:
        (run / "programs" / f"{p.id}.py").write_text(CHILD if p.id == "g01-c00" else PARENT)
        (run / "candidates" / p.id).mkdir(parents=True)
        (run / "candidates" / p.id / "metrics.json").write_text(json.dumps({"status": p.status, "reason": p.reason}))
    majority = {"macro_f1": 0.2613, "weighted_f1": 0.5, "accuracy": 0.64, "per_class_f1": {}}
    (run / "summary.json").write_text(
        json.dumps(
            {
                "run_id": run_id,
                "baselines": {
                    "majority": {"val": majority, "test": majority | {"macro_f1": 0.2609}},
                    "logreg": {"val": majority | {"macro_f1": 0.48}, "test": majority | {"macro_f1": 0.45}},
                },
                "evolve": {
                    "generations": 1,
                    "candidates": {"total": 5, "ok": 4, "rejected": 0, "failed": 1, "by_status": {}},
                    "fitness": {"kind": "cv", "folds": 3, "noise_se": 1.0, "cascade": True, "screened_out": 1},
                    "best_seed": {
                        "id": "seed-a",
                        "test_macro_f1": 0.38,
                        "generation": 0,
                        "fitness": {"mean": 0.40, "se": 0.01, "folds_done": 3, "stage": "full"},
                    },
                    "best_evolved": {
                        "id": "g01-c00",
                        "test_macro_f1": 0.39,
                        "generation": 1,
                        "fitness": {"mean": 0.42, "se": 0.0058, "folds_done": 3, "stage": "full"},
                    },
                    "evolved_beats_best_seed": True,
                    "evolved_beats_best_seed_on_test": True,
                },
            }
        )
    )
    report = CompressionReport(
        candidate="g01-c00",
        status="ok",
        folder=str(run / "compression" / "g01-c00"),
        best="int8-onnxruntime",
        environment={"threads": "1"},
        variants=[
            VariantMetrics(
                name="fp32",
                technique="none",
                status="ok",
                val=_m(0.42),
                test=_m(0.39),
                params_total=3000,
                params_nonzero=3000,
                size_bytes=12000,
                latency_ms={"batch1": 0.2, "batch64": 0.1},
                speedup_batch1=1.0,
                size_ratio=1.0,
            ),
            VariantMetrics(
                name="int8-onnxruntime",
                technique="quantize",
                status="ok",
                val=_m(0.42),
                test=_m(0.39),
                params_total=3000,
                params_nonzero=3000,
                size_bytes=4000,
                latency_ms={"batch1": 0.1, "batch64": 0.05},
                speedup_batch1=2.0,
                size_ratio=3.0,
            ),
        ],
    )
    (run / "compression" / "g01-c00").mkdir(parents=True)
    (run / "compression" / "g01-c00" / "compression.json").write_text(report.model_dump_json())
    return run


# -- ui/runs.py -------------------------------------------------------------------------------------


def test_run_folder_views(tmp_path: Path) -> None:
    from ui import runs

    run = make_run(tmp_path)
    (tmp_path / "not-a-run").mkdir()
    assert [r.run_id for r in runs.list_runs(tmp_path)] == ["fake-run"]
    people = runs.load_population(run)
    board = runs.leaderboard(people)
    assert [r["id"] for r in board] == ["g01-c00", "seed-a", "seed-b", "g01-c02", "g01-c01"]
    assert board[-1]["status"] == "build_error" and board[0]["front"]
    assert (board[0]["fitness"], board[0]["folds"], board[0]["stage"]) == (
        "0.420 ± 0.006",
        "0.410 / 0.430 / 0.420",
        "full",
    )
    assert (
        board[3]["fitness"] == "stage 1: 0.300"
        and board[3]["stage"] == "screened"
        and board[3]["test_macro_f1"] is None
    )
    points = {p["id"]: p for p in runs.pareto_points(people)}
    assert set(points) == {"seed-a", "seed-b", "g01-c00"}  # only fully evaluated candidates are plotted
    assert points["g01-c00"]["fitness_se"] == 0.0058 and points["g01-c00"]["fitness"] == "0.420 ± 0.006"
    assert points["g01-c00"]["front"] and points["seed-b"]["front"] and not points["seed-a"]["front"]  # smallest, best
    assert points["seed-a"]["kind"] == "seed" and points["g01-c00"]["kind"] == "child"
    prog = runs.progress(run, total_generations=1)
    assert prog.finished and prog.fraction == 1.0 and prog.completed_generation == 1
    assert [g["ok"] for g in prog.per_generation] == [2, 1] and prog.per_generation[1]["failed"] == 1
    assert prog.per_generation[1]["screened"] == 1 and prog.per_generation[1]["best_fitness"] == 0.42
    assert runs.fitness_kind(run, people) == "3-fold cross-validation over train + val"
    assert runs.baselines(run)["majority"] == {"val": 0.2613, "test": 0.2609}

    detail = runs.candidate_detail(run, "g01-c01", people)
    assert set(detail.diffs) == {"seed-a", "seed-b"} and detail.metrics["reason"] == "boom"
    diff = runs.candidate_detail(run, "g01-c00", people).diffs["seed-a"]
    assert "-    return nn.Linear(input_dim, 32)" in diff and "+    return nn.Linear(input_dim, 16)" in diff
    assert runs.candidate_detail(run, "nope", people) is None

    (table,) = runs.compression_tables(run)
    assert table.best == "int8-onnxruntime" and [r["variant"] for r in table.rows] == ["fp32", "int8-onnxruntime *"]


# -- ui/launch.py ---------------------------------------------------------------------------------


def test_form_defaults_come_from_demo_yaml() -> None:
    from evoformer.config import PipelineParams, load_params
    from evoformer.config.files import DEMO
    from ui.launch import form_defaults

    demo, form = load_params(PipelineParams, DEMO), form_defaults()
    assert (form.evolve.generations, form.evolve.children, form.evolve.train.time_budget_s) == (2, 4, 15.0)
    assert form.evolve.train == demo.evolve.train and form.compression == demo.compression
    assert form.evolve.operator.kind == "offline" and not form.evolve.data.progress  # the GUI's own two settings


def test_local_run_gets_a_params_file_with_the_key_name_only(tmp_path: Path, monkeypatch) -> None:
    import ui.launch
    from flows.cli import parse
    from ui.launch import KEY_ENV, child_env, evolve_params, start_evolve

    spawned = []
    monkeypatch.setattr(
        ui.launch, "_spawn", lambda args, env, log: spawned.append((args, env)) or type("P", (), {"pid": 1})()
    )
    params = evolve_params(
        {
            "operator": {"kind": "llm", "llm": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}},
            "generations": 1,
            "children": 2,
            "train": {"time_budget_s": 5, "max_train_pairs": 50},
            "seed_folder": str(tmp_path),
            "data": {"data": {"source": "data.jsonl"}, "storage": {"runs_dir": str(tmp_path), "run_id": "r1"}},
        }
    )
    launched, _ = start_evolve(params, "sk-secret", "local")
    ((args, env),) = spawned
    assert args[:2] == ["evolve", "--config"] and "--json" in args and launched.run_id == "r1"
    params_file = Path(args[2])
    assert params_file == tmp_path / "r1" / "ui" / "evolve.yaml" and "sk-secret" not in params_file.read_text()
    parsed, as_json = parse("evolve", args[1:])  # the child's command line gives back the same params
    assert (
        as_json
        and parsed.operator.llm.api_key_env == KEY_ENV
        and parsed.operator.llm.base_url == "http://127.0.0.1:9/v1"
    )
    assert parsed.model_dump(exclude={"operator"}) == params.model_dump(exclude={"operator"})
    assert (
        parsed.train.max_train_pairs == 50
        and parsed.data.data.source == "data.jsonl"
        and parsed.data.storage.run_id == "r1"
    )
    assert env[KEY_ENV] == "sk-secret" and "sk-secret" not in " ".join(args)
    assert "sk-secret" not in (tmp_path / "r1" / "ui" / "launch.json").read_text()
    assert KEY_ENV not in child_env(None)


def test_compress_params_from_the_form(tmp_path: Path) -> None:
    from flows.cli import parse
    from ui.launch import compress_params

    p = compress_params(
        "r1",
        str(tmp_path),
        ["a", "b"],
        {
            "sparsities": [],
            "structured_ratios": [0.5],
            "quantizers": ["onnxruntime"],
            "latency_repeats": 3,
            "finetune": {"max_epochs": 1, "max_train_pairs": 64},
        },
    )
    assert p.candidates == ["a", "b"] and p.config.sparsities == [] and p.config.structured_ratios == [0.5]
    assert (
        p.config.quantizers == ["onnxruntime"]
        and p.config.finetune.max_train_pairs == 64
        and p.config.latency_repeats == 3
    )
    assert p.config.finetune.learning_rate == 3e-4 and p.limits.timeout_s == 1800.0  # the rest: the compress defaults
    file = tmp_path / "c.yaml"
    from evoformer.config.files import write_config

    write_config(p, file)
    assert parse("compress", ["--config", str(file)])[0] == p
    with pytest.raises(ValueError, match="at least one candidate"):
        compress_params("r1", str(tmp_path), [], {})


def test_uploads_are_written_under_the_run(tmp_path: Path) -> None:
    from ui.launch import write_uploads

    folder, prelude = write_uploads(tmp_path / "r", {"a.py": b"x = 1\n"}, b"y = 2\n")
    assert (Path(folder) / "a.py").read_bytes() == b"x = 1\n" and Path(prelude).read_bytes() == b"y = 2\n"
    with pytest.raises(ValueError, match="seed file name"):
        write_uploads(tmp_path / "r", {"../evil.sh": b""}, None)


def test_secret_block_key_resolved_in_memory(prefect_harness) -> None:
    from prefect.blocks.system import Secret

    from evoformer.llm import LLMConfig
    from flows.secret_key import with_secret_key

    Secret(value="sk-from-block").save("ui-test-llm-key", overwrite=True)
    plain = LLMConfig(base_url="http://127.0.0.1:9/v1")
    assert with_secret_key(plain) is plain
    keyed = with_secret_key(plain.model_copy(update={"api_key_secret": "ui-test-llm-key"}))
    assert keyed.api_key() == "sk-from-block"
    assert "sk-from-block" not in keyed.model_dump_json() and "sk-from-block" not in repr(keyed)


def test_ui_command_line() -> None:
    from flows.cli.ui import streamlit_command, ui_parser

    args = ui_parser().parse_args(["--port", "8765", "--runs-dir", "somewhere"])
    cmd = streamlit_command(args)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("ui/app.py")
    assert "--browser.gatherUsageStats" in cmd and cmd[cmd.index("--browser.gatherUsageStats") + 1] == "false"
    assert cmd[cmd.index("--server.headless") + 1] == "true" and cmd[cmd.index("--server.port") + 1] == "8765"
    assert args.runs_dir == "somewhere"


# -- the page (AppTest) -----------------------------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("EVOFORMER_RUNS", str(tmp_path / "runs"))
    import ui.launch

    monkeypatch.setattr(
        ui.launch, "prefect_server_url", lambda: None
    )  # no server: local runs (the session's test harness is one)
    return AppTest.from_file(APP, default_timeout=60)


def test_app_shows_a_past_run(app, tmp_path: Path) -> None:
    make_run(tmp_path / "runs")
    app.run()
    assert not app.exception
    assert app.sidebar.selectbox(key="run_select").value == "fake-run"
    captions = [c.value for c in app.caption]
    assert (
        "Leaderboard: 5 candidates, 3 trained ok (fully evaluated), 1 stopped by the cascade after stage 1" in captions
    )
    assert any(c.startswith("Fitness: 3-fold cross-validation over train + val") for c in captions)
    (info,) = [i.value for i in app.info]  # the run has ended: the verdict on fitness and on test
    assert info.startswith("The best evolved candidate (g01-c00, fitness 0.420 ± 0.006) beat the best seed")
    assert info.endswith("on test (measured, not used to choose) it beat it, 0.390 vs 0.380.")
    assert any("majority val 0.2613 / test 0.2609" in c for c in captions)  # the baseline beside the metrics
    metrics = {m.label: m for m in app.metric}
    best = metrics["Best fitness (CV mean)"]
    assert best.value == "0.4200" and "+0.1587 vs majority" in best.delta
    assert metrics["Majority class (val / test)"].value == "0.2613 / 0.2609"
    board = app.dataframe[1].value  # after the per-generation table
    assert list(board["id"])[:3] == ["g01-c00", "seed-a", "seed-b"] and "front" in board
    assert any("Pareto front: 2 of 3" in c for c in captions)

    app.selectbox(key="candidate-fake-run").select("g01-c00").run()
    metrics = {m.label: m for m in app.metric}
    assert metrics["Fitness (CV mean)"].value == "0.420 ± 0.006"
    codes = [c.value for c in app.code]
    assert CHILD.strip() in codes and any(
        c.startswith("--- seed-a.py") and "+    return nn.Linear(input_dim, 16)" in c for c in codes
    )
    assert any("Compressed g01-c00: ok, 2 variants; best: int8-onnxruntime" in c.value for c in app.caption)
    table = app.dataframe[-1].value
    assert list(table["variant"]) == ["fp32", "int8-onnxruntime *"]


def test_evolve_button_starts_a_local_run_with_the_key_in_memory(app, tmp_path: Path, monkeypatch) -> None:
    import ui.launch

    calls = []

    def fake_start(params, api_key, mode, seeds, prelude, secret_block):
        calls.append((params, api_key, mode, seeds, prelude))
        run = Path(params.data.storage.runs_dir) / params.data.storage.run_id
        (run / "ui").mkdir(parents=True)
        launched = ui.launch.Launched(kind="evolve", mode=mode, run_id=params.data.storage.run_id, run_dir=str(run))
        (run / "ui" / "launch.json").write_text(launched.model_dump_json())
        return launched, None

    monkeypatch.setattr(ui.launch, "start_evolve", fake_start)
    app.run()
    app.file_uploader(key="seed_files").set_value(("tiny.py", PARENT.encode(), "text/x-python"))
    app.radio(key="operator").set_value("llm")
    app.text_input(key="llm_base_url").input("http://127.0.0.1:9/v1")
    app.text_input(key="api_key").input("sk-test-123")
    app.number_input(key="generations").set_value(1)
    app.number_input(key="children").set_value(2)
    app.number_input(key="max_train_pairs").set_value(100)
    app.text_input(key="source").input("/data/small.jsonl")
    app.text_input(key="new_run_id").input("ui-run")
    app.button(key="evolve").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    ((params, api_key, mode, seeds, _),) = calls
    assert api_key == "sk-test-123" and mode == "local" and seeds == {"tiny.py": PARENT.encode()}
    assert (
        params.operator.kind == "llm"
        and params.operator.llm.base_url == "http://127.0.0.1:9/v1"
        and params.generations == 1
    )
    assert (
        params.train.max_train_pairs == 100
        and params.data.data.source == "/data/small.jsonl"
        and params.data.storage.run_id == "ui-run"
    )
    assert (
        params.children == 2 and params.train.time_budget_s == 15.0 and params.train.max_epochs == 12
    )  # the rest: demo.yaml's
    assert "sk-test-123" not in params.model_dump_json()
    assert app.sidebar.selectbox(key="run_select").value == "ui-run"  # the new run is shown at once


def test_deployment_run_gets_the_secret_block_name_only(app, tmp_path: Path, monkeypatch) -> None:
    import prefect.blocks.system
    import prefect.deployments

    import ui.launch

    saved, started = [], []
    monkeypatch.setattr(ui.launch, "prefect_server_url", lambda: "http://127.0.0.1:9/api")
    monkeypatch.setattr(
        prefect.blocks.system.Secret, "save", lambda self, name, overwrite=False: saved.append((name, self.get()))
    )
    monkeypatch.setattr(
        prefect.deployments,
        "run_deployment",
        lambda name, parameters, timeout: started.append((name, parameters, timeout)) or type("R", (), {"id": "fr-1"}),
    )
    app.run()
    assert app.radio(key="mode").value == "deployment"  # a configured server is the default
    app.radio(key="operator").set_value("llm")
    app.text_input(key="llm_base_url").input("http://127.0.0.1:9/v1")
    app.text_input(key="api_key").input("sk-deploy-456")
    app.text_input(key="new_run_id").input("dep-run")
    app.button(key="evolve").click().run()
    assert not app.error, [e.value for e in app.error]
    assert saved == [("evoformer-llm-key", "sk-deploy-456")]
    ((name, parameters, timeout),) = started
    assert name == "evolve/evolve-nightly" and timeout == 0
    assert parameters["params"]["operator"]["llm"]["api_key_secret"] == "evoformer-llm-key"
    assert parameters["params"]["data"]["storage"]["run_id"] == "dep-run"
    assert "sk-deploy-456" not in json.dumps(parameters)
    record = (tmp_path / "runs" / "dep-run" / "ui" / "launch.json").read_text()
    assert "fr-1" in record and "sk-deploy-456" not in record


def test_compress_button_starts_compression_of_the_chosen_candidates(app, tmp_path: Path, monkeypatch) -> None:
    import ui.launch

    calls = []
    monkeypatch.setattr(
        ui.launch,
        "start_compress",
        lambda params, mode: (
            calls.append((params, mode))
            or (
                ui.launch.Launched(
                    kind="compress", mode=mode, run_id=params.run_id, run_dir="x", candidates=params.candidates
                ),
                None,
            )
        ),
    )
    make_run(tmp_path / "runs")
    app.run()
    app.multiselect(key="compress-ids-fake-run").select("g01-c00").run()
    app.text_input(key="sparsities-fake-run").input("")
    app.text_input(key="ratios-fake-run").input("0.5")
    app.multiselect(key="quantizers-fake-run").unselect("torch_ao")
    app.number_input(key="ft-epochs-fake-run").set_value(1)
    app.number_input(key="lat-fake-run").set_value(3)
    app.button(key="compress-fake-run").click().run()
    assert not app.error, [e.value for e in app.error]
    ((params, mode),) = calls
    assert (
        mode == "local"
        and params.candidates == ["g01-c00"]
        and params.config.sparsities == []
        and params.config.structured_ratios == [0.5]
    )
    assert (
        params.config.quantizers == ["onnxruntime"]
        and params.config.finetune.max_epochs == 1
        and params.config.latency_repeats == 3
    )
    assert params.config.finetune.time_budget_s == 90.0 and params.storage.runs_dir == str(tmp_path / "runs")
