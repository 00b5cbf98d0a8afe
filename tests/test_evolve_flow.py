"""The evolve flow end to end on a small real fixture: offline operator, scripted LLM server with
faults, LLM budget and auth errors, and kill-and-resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from llm_server import Error, Reply

from evoformer.candidates.job import TrainConfig
from evoformer.config.fitness import CascadeConfig, FitnessConfig
from evoformer.evolution.operators import OperatorConfig
from evoformer.evolution.population import SelectionConfig
from evoformer.features import EncoderConfig
from evoformer.llm import LLMAuthError, LLMConfig
from evoformer.runs import StorageConfig
from evoformer.seeds import SEED_DIR
from flows.data import PrepareDataParams

pytestmark = pytest.mark.integration  # trains in the sandbox, runs flows or starts servers

FAST_TRAIN = TrainConfig(max_epochs=2, patience=2, time_budget_s=120, latency_repeats=3)
TEST_SEEDS = ("attention_pool_mlp", "conv_text")
# The backslash inside TINY_SEED only wraps this file's line: the program text keeps one line there.
TINY_SEED = """import torch.nn as nn


class Tiny(nn.Module):
    def __init__(self, input_dim: int, num_classes: int, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), \
nn.Dropout(0.1), nn.Linear(hidden, num_classes))

    def forward(self, x, mask):
        m = mask.unsqueeze(-1).float()
        return self.net((x * m).sum(1) / m.sum(1).clamp(min=1.0))


def build_model(input_dim: int, num_classes: int) -> nn.Module:
    return Tiny(input_dim, num_classes)
"""


@pytest.fixture(scope="module")
def seed_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("seeds")
    for name in TEST_SEEDS:
        shutil.copy(SEED_DIR / f"{name}.py", folder / f"{name}.py")
    return folder


def evolve_params(source: Path, cache: Path, runs: Path, seeds: Path, run_id: str, **overrides):
    from flows.evolve import EvolveParams

    data = PrepareDataParams(
        encoder=EncoderConfig(),
        progress=False,
        storage=StorageConfig(runs_dir=str(runs), cache_dir=str(cache), run_id=run_id),
    )
    data.data.source = str(source)
    fields = dict(
        generations=2,
        children=3,
        seed=3,
        seed_folder=str(seeds),
        data=data,
        train=FAST_TRAIN,
        max_parallel=2,
        operator=OperatorConfig(kind="offline"),
        # One training per candidate keeps these flow tests fast; the first test cross-validates.
        evaluation=FitnessConfig(folds=1, cascade=CascadeConfig(enabled=False)),
    )
    fields.update(overrides)
    return EvolveParams(**fields)


def _population(run_dir: Path) -> list[dict]:
    """Lineage without the fields that legitimately differ between runs (folders, timings)."""
    keep = (
        "id",
        "generation",
        "parents",
        "operator",
        "program_hash",
        "status",
        "params",
        "val_macro_f1",
        "fitness_se",
        "fold_f1",
        "stage",
        "screen_f1",
        "test_macro_f1",
        "retired",
    )
    return [{k: row[k] for k in keep} for row in json.loads((run_dir / "lineage.json").read_text())]


CROSS_VALIDATED = FitnessConfig(folds=2, cascade=CascadeConfig(top_fraction=0.5, margin=0.0))


def test_offline_evolution_runs_two_generations(
    prefect_harness, small_climate_fever, feature_cache_dir, seed_folder, tmp_path, monkeypatch
) -> None:
    import prefect.deployments
    from prefect.client.orchestration import get_client

    from flows.compress import CompressParams, CompressTrigger
    from flows.evolve import evolve

    handed_over = []
    monkeypatch.setattr(
        prefect.deployments,
        "run_deployment",
        lambda name, parameters, timeout: handed_over.append(parameters) or type("Run", (), {"id": "r-1"}),
    )
    params = evolve_params(
        small_climate_fever,
        feature_cache_dir,
        tmp_path / "runs",
        seed_folder,
        "offline-a",
        compress=CompressTrigger(mode="deployment"),
        evaluation=CROSS_VALIDATED,
    )
    summary = evolve(params)
    run_dir = Path(summary["run_dir"])
    assert summary["operator"] == "offline" and "offline" in summary["operator_reason"]
    assert summary["generations"] == 2
    counts = summary["candidates"]
    assert counts["total"] == len(TEST_SEEDS) + 2 * 3
    assert counts["ok"] + counts["rejected"] + counts["failed"] == counts["total"]
    assert counts["ok"] >= len(TEST_SEEDS) + 3, counts  # the offline operator's children of our seeds build and train

    lineage = json.loads((run_dir / "lineage.json").read_text())
    children = [row for row in lineage if row["generation"] > 0]
    by_id = {row["id"]: row for row in lineage}
    for child in children:
        assert child["operator"] in ("ast-mutation", "ast-crossover")
        assert len(child["parents"]) == (2 if child["operator"] == "ast-crossover" else 1)
        assert all(by_id[p]["generation"] < child["generation"] and by_id[p]["retired"] for p in child["parents"])
        assert child["description"] and (run_dir / "programs" / f"{child['id']}.py").is_file()
        if child["stage"] == "full":  # the model it keeps; one the cascade stopped keeps none
            folder = Path(child["folder"])
            assert (folder / "weights.safetensors").is_file() and (folder / "metrics.json").is_file()
        elif child["stage"] == "screened":
            assert not child["folder"] and (run_dir / "screening" / child["id"] / "metrics.json").is_file()
    gen2_parents = {p for row in children if row["generation"] == 2 for p in row["parents"]}
    assert all(by_id[p]["generation"] == 1 for p in gen2_parents), (
        "used parents are retired; generation 2 breeds from generation 1"
    )
    hashes = [row["program_hash"] for row in lineage if row["status"] != "duplicate" and row["program_hash"]]
    assert len(hashes) == len(set(hashes))

    fitness = summary["fitness"]
    assert fitness["kind"] == "cv" and fitness["folds"] == 2 and fitness["cascade"]
    full = [r for r in lineage if r["stage"] == "full"]
    for row in full:  # fitness is the mean of both folds, with its standard error
        assert len(row["fold_f1"]) == 2 and row["val_macro_f1"] == pytest.approx(sum(row["fold_f1"]) / 2)
        assert row["fitness_se"] is not None and row["screen_f1"] is not None
        assert (run_dir / "folds" / row["id"] / "fold-1" / "metrics.json").is_file()
    screened = [r for r in lineage if r["stage"] == "screened"]
    assert all(r["val_macro_f1"] is None and r["screen_f1"] is not None for r in screened)
    assert fitness["screened_out"] == len(screened) and fitness["fully_evaluated"] == len(full)
    assert all(row["stage"] == "full" for row in lineage if row["generation"] == 0)  # seeds always go on
    assert summary["best"]["val_macro_f1"] == max(r["val_macro_f1"] for r in full)
    assert summary["best"]["fitness"]["folds_done"] == 2 and summary["best"]["fitness"]["stage"] == "full"
    board = summary["leaderboard"]  # every candidate, fully evaluated ones first, by fitness
    assert len(board) == counts["total"] and board[0]["id"] == summary["best"]["id"]
    assert {b["id"] for b in board} == {r["id"] for r in lineage}
    front_ids = [f["id"] for f in summary["front"]]
    assert front_ids and summary["best"]["id"] in front_ids
    assert (run_dir / "pareto.png").stat().st_size > 1000
    recorded = json.loads((run_dir / "summary.json").read_text())["evolve"]
    assert recorded["best"] == summary["best"] and recorded["flow_run_id"]  # the automation finds the run by it
    (handed,) = handed_over  # the final front goes to the compress deployment
    assert CompressParams.model_validate(handed["params"]).candidates == front_ids
    assert summary["compress"]["flow_run_id"] == "r-1"

    async def artifact_keys():
        async with get_client() as client:
            return {a.key for a in await client.read_artifacts() if a.key}

    import asyncio

    keys = asyncio.run(artifact_keys())
    assert {"evolve-leaderboard", "evolve-best-program", "evolve-pareto", "evolve-progress"} <= keys

    # Another run with the same settings gets every training from Prefect's cache, and copies the
    # files into its own folder; a cached training whose folder is gone is trained again.
    gone = next(row for row in children if row["stage"] == "full")
    shutil.rmtree(gone["folder"])
    other = evolve(
        evolve_params(
            small_climate_fever,
            feature_cache_dir,
            tmp_path / "runs",
            seed_folder,
            "offline-b",
            evaluation=CROSS_VALIDATED,
        )
    )
    other_dir = Path(other["run_dir"])
    assert _population(other_dir) == _population(run_dir)
    for row in json.loads((other_dir / "lineage.json").read_text()):
        if row["stage"] == "full":
            folder = Path(row["folder"])
            assert folder.parent == other_dir / "candidates" and (folder / "weights.safetensors").is_file(), row["id"]
            assert json.loads((folder / "metrics.json").read_text())["folder"] == str(folder)


def test_children_duplicating_a_known_program_are_not_trained(seed_folder, tmp_path) -> None:
    from evoformer.evolution.children import check_children
    from evoformer.evolution.operators import ChildPlan, Proposal

    source = (seed_folder / "conv_text.py").read_text()
    reformatted = "# same program, other comments and spacing\n" + "\n".join(  # strings (docstrings) left as they are
        line + ("  # a comment" if line.strip().startswith("return ") else "")
        for line in source.replace("\n\n\n", "\n\n\n\n").splitlines()
    )

    def plan(i: int) -> ChildPlan:
        return ChildPlan(child_id=f"g01-c0{i}", generation=1, index=i, parents=["seed-x"], kind="mutation", rng_seed="")

    proposals = [
        Proposal(plan=plan(0), operator="llm-mutation", source=reformatted),
        Proposal(
            plan=plan(1), operator="llm-mutation", source=source.replace("channels: int = 128", "channels: int = 64")
        ),
        Proposal(
            plan=plan(2), operator="llm-mutation", source=source.replace("channels: int = 128", "channels: int = 64")
        ),
        Proposal(plan=plan(3), operator="llm-mutation", source="import os\n" + source),
    ]
    from evoformer.candidates.program import CandidateProgram
    from evoformer.candidates.static_check import StaticCheckConfig

    known = {CandidateProgram(name="seed", source=source).program_hash(): "seed-conv_text"}
    recorded, jobs = check_children(proposals, known, "", StaticCheckConfig(), tmp_path)
    status = {i.id: (i.status, i.reason) for i in recorded}
    assert status["g01-c00"] == ("duplicate", "same normalised AST as seed-conv_text")
    assert status["g01-c02"] == ("duplicate", "same normalised AST as g01-c01")
    assert status["g01-c03"][0] == "rejected" and "os" in status["g01-c03"][1]
    assert [job.individual.id for job in jobs] == ["g01-c01"]


def _child_reply(width: int, prose: bool = False) -> str:
    code = (SEED_DIR / "attention_pool_mlp.py").read_text().replace("hidden: int = 256", f"hidden: int = {width}")
    if prose:
        return f"Here is a smaller variant; I reduced the hidden width.\n\n{code}\nThis should train faster."
    return f"```python\n{code}```"


def test_llm_evolution_against_a_scripted_server_with_faults(
    prefect_harness, small_climate_fever, feature_cache_dir, seed_folder, tmp_path, scripted_llm_server, monkeypatch
) -> None:
    from flows.evolve import evolve

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    counter = iter(range(24, 1000, 8))
    server = scripted_llm_server(
        [
            Reply(_child_reply(200)),  # a valid child
            Reply(_child_reply(208, prose=True)),  # a child wrapped in prose
            Reply("I'm sorry, as a language model I prefer not to write code today."),  # garbage
            Error(429, message="slow down", headers={"Retry-After": "1"}),  # then success below
            Error(500),
            Error(500),
            Reply(_child_reply(216), delay_s=3.0),  # slower than the client's timeout
        ],
        default=lambda request: Reply(_child_reply(next(counter))),
    )
    llm = LLMConfig(
        base_url=server.base_url,
        model="scripted-model",
        timeout_s=1.5,
        max_retries=4,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
        price_prompt_per_1k=0.5,
        price_completion_per_1k=1.5,
    )
    params = evolve_params(
        small_climate_fever,
        feature_cache_dir,
        tmp_path / "runs",
        seed_folder,
        "llm-a",
        generations=1,
        children=6,
        operator=OperatorConfig(kind="auto", llm=llm, repair_rounds=0),  # the faults, not the repairs
    )
    summary = evolve(params)
    assert summary["operator"] == "llm" and server.base_url in summary["operator_reason"]
    lineage = json.loads((Path(summary["run_dir"]) / "lineage.json").read_text())
    children = [row for row in lineage if row["generation"] == 1]
    assert len(children) == 6
    failed = [row for row in children if row["status"] == "proposal_failed"]
    assert len(failed) == 1 and "no program in the reply" in failed[0]["reason"], failed
    assert sum(row["status"] == "ok" for row in children) >= 4
    for row in children:
        assert row["operator"] in ("llm-mutation", "llm-crossover") and row["prompt_hash"]
        assert row["temperature"] in (0.2, 0.6, 0.8, 1.0)
    llm_usage = summary["llm"]
    assert llm_usage["retries"] >= 4, llm_usage  # 429, two 500s, one timeout
    assert llm_usage["requests"] >= 6 + 4 and llm_usage["tokens"] > 0 and llm_usage["cost"] > 0
    user_prompts = [r["messages"][1]["content"] for r in server.requests]
    assert all("# Metrics: params" in p and "Target for the new program" in p for p in user_prompts)
    assert {r["temperature"] for r in server.requests} <= {0.2, 0.6, 0.8, 1.0}

    usage_file = json.loads((Path(summary["run_dir"]) / "llm" / "usage.json").read_text())
    assert usage_file["tokens"] == llm_usage["tokens"] and usage_file["retries"] == llm_usage["retries"]

    # Lose the saved state and proposals, as if killed mid-generation before they were written:
    # the re-run takes every reply from the disk cache and every training from its folder.
    run_dir = Path(summary["run_dir"])
    expected = _population(run_dir)
    (run_dir / "evolution" / "state.json").unlink()
    (run_dir / "evolution" / "proposals-g01.json").unlink()
    before = len(server.requests)
    again = evolve(params)
    assert len(server.requests) == before
    assert again["llm"]["cache_hits"] >= 6 and again["llm"]["tokens"] == llm_usage["tokens"]
    assert _population(run_dir) == expected


BROKEN_CHILD = """
import torch
import torch.nn as nn

class Child(nn.Module):
    def __init__(self, input_dim, num_classes):
        super().__init__()
        self.emb = nn.Embedding(1000, 32)
        self.out = nn.Linear(32, num_classes)

    def forward(self, x, mask):
        return self.out(self.emb(x).mean(dim=(1, 2)))

def build_model(input_dim, num_classes):
    return Child(input_dim, num_classes)
"""


def test_llm_children_are_smoke_checked_and_repaired(
    prefect_harness, small_climate_fever, feature_cache_dir, seed_folder, tmp_path, scripted_llm_server, monkeypatch
) -> None:
    """A child whose program fails the sandboxed smoke run is sent back with its error, and the
    repaired program trains; a child that repeats its sibling is sent back too; the summary counts
    valid children and repairs."""
    from flows.evolve import evolve

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    sibling_copy = _child_reply(200).replace("class ", "# the same child, renamed\nclass ", 1)
    server = scripted_llm_server(
        [
            Reply(f"```python\n{BROKEN_CHILD}```"),
            Reply(_child_reply(200)),
            Reply(sibling_copy),
            Reply(_child_reply(208)),
        ]
    )
    llm = LLMConfig(base_url=server.base_url, model="scripted-model", timeout_s=30, max_retries=0)
    params = evolve_params(
        small_climate_fever,
        feature_cache_dir,
        tmp_path / "runs",
        seed_folder,
        "llm-repair",
        generations=1,
        children=2,
        operator=OperatorConfig(kind="llm", llm=llm),
    )
    summary = evolve(params)
    # A loopback server that reports no slots gets one request at a time: c00 asks first.
    assert len(server.requests) == 4
    repair = server.requests[1]["messages"]
    assert repair[-2]["role"] == "assistant" and "nn.Embedding" in repair[-2]["content"]
    assert "forward failed" in repair[-1]["content"] and 'File "program.py"' in repair[-1]["content"]
    assert (
        "inside `emb` (Embedding(1000, 32)), which was given [2, " in repair[-1]["content"]
    )  # the layer and its input
    assert "the same as another child already written" in server.requests[3]["messages"][-1]["content"]
    lineage = {row["id"]: row for row in json.loads((Path(summary["run_dir"]) / "lineage.json").read_text())}
    assert lineage["g01-c00"]["repairs"] == 1 and lineage["g01-c00"]["status"] == "ok"
    assert lineage["g01-c01"]["repairs"] == 1 and lineage["g01-c01"]["status"] == "ok"
    assert (tmp_path / "runs" / "llm-repair" / "smoke" / "g01-c00").is_dir()
    usage = summary["llm"]
    assert usage["children"] == 2 and usage["valid_children"] == 2 and usage["valid_rate"] == 1.0
    assert usage["repairs"] == 1.0 and usage["seconds_per_valid_child"] > 0


def test_llm_budget_stops_proposing(
    prefect_harness, small_climate_fever, feature_cache_dir, seed_folder, tmp_path, scripted_llm_server
) -> None:
    from flows.evolve import evolve

    counter = iter(range(24, 1000, 8))
    server = scripted_llm_server(default=lambda request: Reply(_child_reply(next(counter)), completion_tokens=500))
    llm = LLMConfig(base_url=server.base_url, budget_tokens=100)
    params = evolve_params(
        small_climate_fever,
        feature_cache_dir,
        tmp_path / "runs",
        seed_folder,
        "llm-budget",
        generations=3,
        children=2,
        operator=OperatorConfig(kind="llm", llm=llm),
        selection=SelectionConfig(crossover_rate=0.0),
    )
    summary = evolve(params)
    assert "budget" in summary["stopped"]
    # Generation 1's two requests start before either is counted; generation 2 is not proposed.
    # Generation 1's requests may start before any is counted (the cap is soft); generation 2 is not proposed.
    first = len(server.requests)
    assert summary["generations"] == 1 and 1 <= first <= 2
    assert summary["llm"]["tokens"] >= 100
    # Resumed with a larger budget, the run goes on.
    params.operator.llm.budget_tokens = None
    resumed = evolve(params)
    assert resumed["generations"] == 3 and not resumed["stopped"] and len(server.requests) == first + 2 * 2


def test_rejected_api_key_stops_the_run_with_a_clear_message(
    prefect_harness, small_climate_fever, feature_cache_dir, seed_folder, tmp_path, scripted_llm_server
) -> None:
    from flows.evolve import evolve

    server = scripted_llm_server(default=lambda request: Error(401, message="Incorrect API key provided"))
    params = evolve_params(
        small_climate_fever,
        feature_cache_dir,
        tmp_path / "runs",
        seed_folder,
        "llm-auth",
        generations=1,
        children=2,
        operator=OperatorConfig(kind="llm", llm=LLMConfig(base_url=server.base_url)),
    )
    with pytest.raises(LLMAuthError, match="API key"):
        evolve(params)
    # One request at a time (a loopback server that reports no slots): the first 401 stops the run, never retried.
    assert len(server.requests) == 1


def test_a_server_lost_mid_generation_stops_the_run_and_the_rerun_reuses_its_replies(
    prefect_harness, small_climate_fever, feature_cache_dir, tmp_path, scripted_llm_server, monkeypatch
) -> None:
    """The server dies while its third reply is on the way (requests go one at a time to a loopback
    server): the run stops with one readable error before training generation 1, and the same
    command against a live server proposes it again, two replies from the disk cache."""
    import threading

    from evoformer.evolution.operators import LLMServerLost
    from flows.evolve import evolve

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "tiny.py").write_text(TINY_SEED)
    dying = scripted_llm_server([Reply(_child_reply(24)), Reply(_child_reply(32)), Reply(_child_reply(40), delay_s=30)])

    def kill_on_the_third_request() -> None:
        while len(dying.requests) < 3:
            time.sleep(0.01)
        dying.close()  # cuts the delayed reply short; the retry then finds nothing listening

    threading.Thread(target=kill_on_the_third_request, daemon=True).start()
    llm = LLMConfig(base_url=dying.base_url, model="scripted", max_retries=1, backoff_initial_s=0.05, backoff_max_s=0.1)
    params = evolve_params(
        small_climate_fever,
        feature_cache_dir,
        tmp_path / "runs",
        seeds,
        "server-lost",
        generations=1,
        children=3,
        operator=OperatorConfig(kind="llm", llm=llm, repair_rounds=0),
        selection=SelectionConfig(crossover_rate=0.0),
    )
    with pytest.raises(
        LLMServerLost,
        match=r"generation 1: no LLM server answered .* 1 of 3 children .* \(2 of 3 children answered\) are cached",
    ):
        evolve(params)
    run_dir = tmp_path / "runs" / "server-lost"
    assert not (run_dir / "evolution" / "proposals-g01.json").exists()
    assert json.loads((run_dir / "evolution" / "state.json").read_text())["completed_generation"] == 0
    assert len(list((run_dir / "llm" / "cache").glob("*.json"))) == 2

    live = scripted_llm_server(default=lambda request: Reply(_child_reply(48)))
    params.operator.llm.base_url = live.base_url
    summary = evolve(params)
    assert summary["generations"] == 1 and summary["llm"]["cache_hits"] == 2
    assert len(live.requests) == 1  # only the child whose reply was lost
    children = [row for row in json.loads((run_dir / "lineage.json").read_text()) if row["generation"] == 1]
    assert len(children) == 3 and all(row["status"] != "proposal_failed" for row in children), children


def _cli(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_kill_and_resume_gives_the_population_of_an_uninterrupted_run(
    small_climate_fever, feature_cache_dir, tmp_path
) -> None:
    runs, seed_folder = tmp_path / "runs", tmp_path / "seeds"
    seed_folder.mkdir()
    (seed_folder / "tiny.py").write_text(TINY_SEED)
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect-home"))
    env.pop("PREFECT_API_URL", None)
    common = [
        "evolve",
        "--operator",
        "offline",
        "--generations",
        "1",
        "--children",
        "3",
        "--seed",
        "5",
        "--seed-folder",
        str(seed_folder),
        "--max-epochs",
        "2",
        "--patience",
        "2",
        "--time-budget",
        "120",
        "--latency-repeats",
        "3",
        "--max-parallel",
        "1",
        "--evaluation.folds",  # cross-validated and cascaded: resume must be exact with folds too
        "2",
        "--source",
        str(small_climate_fever),
        "--cache-dir",
        str(feature_cache_dir),
        "--runs-dir",
        str(runs),
        "--no-progress",
        "--json",
    ]

    proc = _cli([*common, "--run-id", "killed"], env)
    run_dir = runs / "killed"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if list((run_dir / "candidates").glob("g01-*/train_key")):
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed:\n" + proc.stdout.read()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    state = json.loads((run_dir / "evolution" / "state.json").read_text())
    assert state["completed_generation"] == 0  # killed in the middle of generation 1
    trained_before = {p.parent.name: p.stat().st_mtime_ns for p in (run_dir / "candidates").glob("*/train_key")}

    resumed = subprocess.run(
        [sys.executable, "-m", "flows.cli", *common, "--run-id", "killed"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout)
    assert summary["generations"] == 1 and summary["candidates"]["total"] == 4
    for name, mtime in trained_before.items():  # finished trainings were reused, not redone
        assert (run_dir / "candidates" / name / "train_key").stat().st_mtime_ns == mtime, name

    # Its own Prefect home: no cached training is shared, the reference trains everything itself.
    env_reference = dict(env, PREFECT_HOME=str(tmp_path / "prefect-home-reference"))
    reference = subprocess.run(
        [sys.executable, "-m", "flows.cli", *common, "--run-id", "uninterrupted"],
        env=env_reference,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert reference.returncode == 0, reference.stdout[-3000:] + reference.stderr[-3000:]
    assert _population(run_dir) == _population(runs / "uninterrupted")


def test_cli_llm_operator_without_endpoint_is_a_clear_error(
    prefect_harness, small_climate_fever, monkeypatch, tmp_path
) -> None:
    from test_cli import run_main

    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    code, out, err = run_main(
        ["evolve", "--operator", "llm", "--source", str(small_climate_fever), "--runs-dir", str(tmp_path)]
    )
    assert code == 2 and out == ""
    assert "operator 'llm' needs an endpoint" in err and "--llm-base-url" in err
