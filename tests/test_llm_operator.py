"""The LLM operator: the contract in the prompt, SEARCH/REPLACE edits, self-repair rounds and shorter
prompts on context-length errors, against the scripted loopback server (or a fake client)."""

from __future__ import annotations

from pathlib import Path

import pytest
from llm_server import Error, Reply

from evoformer.candidates.static_check import DEFAULT_ALLOWED_IMPORTS, StaticCheckConfig, check_source
from evoformer.config.evolve import OperatorConfig
from evoformer.evolution.diff_edits import DiffError, EditBlock, apply_blocks, parse_blocks
from evoformer.evolution.operators import ChildPlan, propose
from evoformer.evolution.prompt import MUTATION_CHANGES, SKELETON, ParentView, build_messages, compact_source
from evoformer.llm import LLMConfig, LLMContextLengthError, LLMReply, open_client

IMPORTS = list(DEFAULT_ALLOWED_IMPORTS)

PARENT = '''"""A masked mean pool."""
import torch
import torch.nn as nn


class Net(nn.Module):
    """Linear layer, pool, head."""

    def __init__(self, input_dim, num_classes):
        super().__init__()
        self.proj = nn.Linear(input_dim, 128)  # width
        self.head = nn.Linear(128, num_classes)

    def forward(self, x, mask):
        # mean over real tokens
        w = mask.unsqueeze(-1).float()
        h = (self.proj(x) * w).sum(1) / w.sum(1).clamp(min=1.0)
        return self.head(h)


def build_model(input_dim, num_classes):
    return Net(input_dim, num_classes)
'''
CHILD = PARENT.replace("128", "64")
OTHER = PARENT.replace("self.proj(x)", "torch.relu(self.proj(x))")


def fenced(source: str) -> str:
    return f"Here it is:\n```python\n{source}```\n"


def block(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def plan(kind: str = "mutation", parents: tuple[str, ...] = ("p1",)) -> ChildPlan:
    return ChildPlan(
        child_id="g01-c00", generation=1, index=0, parents=list(parents), kind=kind, rng_seed="0:child:1:0"
    )


def view(pid: str = "p1", source: str = PARENT) -> ParentView:
    return ParentView(id=pid, source=source, params=50_000, val_macro_f1=0.41)


@pytest.fixture
def llm(scripted_llm_server, monkeypatch, tmp_path):
    """``llm(steps)`` -> (server, client): a client of a scripted server, caching in tmp_path/llm."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    clients = []

    def start(steps, cache_dir: Path | None = None):
        server = scripted_llm_server(steps)
        client, _ = open_client(LLMConfig(base_url=server.base_url, max_retries=0), cache_dir or tmp_path / "llm")
        clients.append(client)
        return server, client

    yield start
    for client in clients:
        client.close()


def user_text(request: dict) -> str:
    return "\n".join(m["content"] for m in request["messages"] if m["role"] == "user")


# ---- the prompt -------------------------------------------------------------------------------


def test_system_prompt_states_the_contract_and_a_runnable_skeleton() -> None:
    import torch

    system, user = (m["content"] for m in build_messages([view()], ["torch", "math"]))
    for part in (
        "build_model(input_dim: int, num_classes: int) -> torch.nn.Module",
        "float tensor [B, T, 384]",
        "never use nn.Embedding",
        "bool tensor [B, T]; True marks a real token",
        "logits [B, num_classes]",
        "Only these imports are allowed: torch, math.",
        SKELETON,
    ):
        assert part in system, part
    assert "ONE concrete change" in user and "dropout" in user and "residual" in user
    assert "A copy of a parent" in user and "rejected" in user
    assert "# Metrics: params 50,000 | fitness 0.4100" in user
    assert user.rstrip().endswith("# Metrics: params 45,000 | fitness 0.4182")
    # the skeleton passes the static check and builds, runs forward and backward with a padded mask
    assert check_source(SKELETON, StaticCheckConfig()).ok
    namespace: dict = {}
    exec(compile(SKELETON, "skeleton", "exec"), namespace)
    model = namespace["build_model"](384, 3)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    logits = model(torch.randn(2, 3, 384), mask)
    assert logits.shape == (2, 3)
    logits.sum().backward()


def test_compact_source_drops_docstrings_and_comments_only() -> None:
    compact = compact_source(PARENT + '\nNOTE = """kept\n\n\ntext"""  # gone\n')
    assert '"""' in compact and "kept\n\n\ntext" in compact
    assert "A masked mean pool" not in compact and "Linear layer" not in compact
    assert "# width" not in compact and "mean over real tokens" not in compact
    assert "\n\n\n" not in compact.replace("kept\n\n\ntext", "")
    namespace: dict = {}
    exec(compile(compact, "compact", "exec"), namespace)
    assert callable(namespace["build_model"])
    assert compact_source("def f():\n    '''only a docstring'''\n") == "def f():\n    pass\n"
    assert compact_source("def broken(:\n") == "def broken(:\n"


def test_crossover_prompts_ask_for_a_full_rewrite_even_in_diff_mode() -> None:
    mutation = build_messages([view()], IMPORTS, edit_mode="diff")[1]["content"]
    crossover = build_messages([view(), view("p2", OTHER)], IMPORTS, edit_mode="diff")[1]["content"]
    assert "<<<<<<< SEARCH" in mutation and ">>>>>>> REPLACE" in mutation
    assert "SEARCH" not in crossover and "Return the whole new program" in crossover


# ---- SEARCH/REPLACE blocks --------------------------------------------------------------------


def test_parse_and_apply_blocks_exact_and_whitespace_tolerant() -> None:
    reply = (
        "Narrower:\n"
        + block(
            "        self.proj = nn.Linear(input_dim, 128)  # width\n", "        self.proj = nn.Linear(input_dim, 64)\n"
        )
        + "and the head (indented wrongly, trailing blanks):\n"
        + block("self.head = nn.Linear(128, num_classes)   \n", "self.head = nn.Linear(64, num_classes)\n")
    )
    blocks = parse_blocks(reply)
    assert [b.search.strip()[:14] for b in blocks] == ["self.proj = nn", "self.head = nn"]
    edited = apply_blocks(PARENT, blocks)
    assert "        self.proj = nn.Linear(input_dim, 64)\n" in edited
    assert "        self.head = nn.Linear(64, num_classes)\n" in edited  # re-indented to the matched line
    assert "128" not in edited
    compile(edited, "edited", "exec")


def test_the_diff_prompt_s_worked_example_is_a_block_that_applies_to_the_skeleton() -> None:
    prompt = build_messages([view()], IMPORTS, edit_mode="diff")[1]["content"]
    (example,) = parse_blocks(prompt)  # the one block the prompt shows, with no placeholder in it
    edited = apply_blocks(SKELETON, [example])
    assert edited != SKELETON and "nn.Linear(hidden // 2, num_classes)" in edited
    compile(edited, "edited", "exec")
    assert "not from this example" in prompt


def test_a_block_that_matches_nowhere_raises_naming_it() -> None:
    blocks = [EditBlock("import torch\n", "import torch\n"), EditBlock("self.conv = nn.Conv1d(1, 2, 3)\n", "x\n")]
    with pytest.raises(DiffError, match=r"block 2 \(SEARCH starting 'self.conv = nn.Conv1d"):
        apply_blocks(PARENT, blocks)
    with pytest.raises(DiffError, match="no SEARCH/REPLACE block"):
        apply_blocks(PARENT, parse_blocks("no blocks here"))


def test_diff_mode_applies_the_blocks(llm) -> None:
    server, client = llm(
        [
            Reply(
                block(
                    "        self.proj = nn.Linear(input_dim, 128)  # width\n",
                    "        self.proj = nn.Linear(input_dim, 96)  # width\n",
                )
            )
        ]
    )
    proposal = propose(plan(), [view()], "llm", OperatorConfig(edit_mode="diff"), IMPORTS, client=client)
    assert proposal.status == "proposed" and proposal.edit == "diff", proposal.reason
    assert proposal.source == PARENT.replace("(input_dim, 128)", "(input_dim, 96)")
    assert "<<<<<<< SEARCH" in user_text(server.requests[0])


def test_diff_mode_falls_back_to_a_full_program(llm) -> None:
    reply = block("self.missing = 1\n", "self.missing = 2\n") + fenced(CHILD)
    _, client = llm([Reply(reply)])
    proposal = propose(plan(), [view()], "llm", OperatorConfig(edit_mode="diff"), IMPORTS, client=client)
    assert (proposal.status, proposal.edit, proposal.source) == ("proposed", "diff-fallback", CHILD)


def test_diff_mode_fails_with_the_reason_when_no_block_applies_and_no_program(llm) -> None:
    server, client = llm([Reply(block("self.missing = 1\n", "self.missing = 2\n"))])
    config = OperatorConfig(edit_mode="diff", repair_rounds=0)
    proposal = propose(plan(), [view()], "llm", config, IMPORTS, client=client)
    assert proposal.status == "proposal_failed" and proposal.source is None
    assert "block 1 (SEARCH starting 'self.missing = 1') does not match the program" in proposal.reason
    assert "no whole program" in proposal.reason
    assert len(server.requests) == 1


# ---- self-repair ------------------------------------------------------------------------------


def test_a_program_failing_the_check_is_repaired(llm) -> None:
    broken = PARENT.replace("nn.Linear(128, num_classes)", "nn.Linear(129, num_classes)")
    server, client = llm([Reply(fenced(broken)), Reply(fenced(CHILD))])
    seen = []

    def check(source: str) -> str | None:
        seen.append(source)
        return "forward: mat1 and mat2 shapes cannot be multiplied (2x128 and 129x3)" if "129" in source else None

    proposal = propose(plan(), [view()], "llm", OperatorConfig(), IMPORTS, client=client, check=check)
    assert proposal.status == "proposed" and proposal.source == CHILD
    assert proposal.repairs == 1 and proposal.repair_errors == [
        "forward: mat1 and mat2 shapes cannot be multiplied (2x128 and 129x3)"
    ]
    assert seen == [broken, CHILD]
    first, second = server.requests
    assert second["messages"][: len(first["messages"])] == first["messages"]
    assert second["messages"][-2] == {"role": "assistant", "content": fenced(broken)}
    assert "mat1 and mat2 shapes cannot be multiplied" in second["messages"][-1]["content"]
    assert "return the whole corrected program" in second["messages"][-1]["content"]
    assert first["seed"] != second["seed"]


def test_repair_rounds_run_out_and_keep_the_last_program(llm) -> None:
    bad = [PARENT.replace("128", str(n)) for n in (10, 20, 30)]
    server, client = llm([Reply(fenced(s)) for s in bad])
    errors = iter(["error one", "error two", "never asked"])
    proposal = propose(
        plan(), [view()], "llm", OperatorConfig(repair_rounds=2), IMPORTS, client=client, check=lambda s: next(errors)
    )
    assert len(server.requests) == 3 and proposal.repairs == 2
    assert proposal.repair_errors == ["error one", "error two"] and proposal.source == bad[2]


def test_each_request_and_repair_round_is_reported_as_progress(llm) -> None:
    _, client = llm([Reply(fenced(PARENT.replace("128", "10"))), Reply(fenced(CHILD))])
    errors = iter(["NameError: name 'proj' is not defined\n  more lines", None])
    lines: list[str] = []
    propose(
        plan(),
        [view()],
        "llm",
        OperatorConfig(repair_rounds=2),
        IMPORTS,
        client=client,
        check=lambda s: next(errors),
        progress=lines.append,
    )
    child = plan().child_id
    assert lines[0].startswith(f"{child}: asking ") and "T=" in lines[0]
    assert lines[1:] == [f"{child}: repair round 1/2: NameError: name 'proj' is not defined"]


def test_no_repair_round_when_repair_rounds_is_zero(llm) -> None:
    server, client = llm([Reply(fenced(CHILD)), Reply(fenced(OTHER))])
    calls = []
    config = OperatorConfig(repair_rounds=0)
    proposal = propose(
        plan(), [view()], "llm", config, IMPORTS, client=client, check=lambda s: calls.append(s) or "bad"
    )
    assert proposal.source == CHILD and proposal.repairs == 0 and len(server.requests) == 1 and calls == []


def test_a_reply_without_a_program_gets_a_repair_round(llm) -> None:
    server, client = llm([Reply("I would make it wider."), Reply(fenced(CHILD))])
    proposal = propose(plan(), [view()], "llm", OperatorConfig(), IMPORTS, client=client, check=lambda s: None)
    assert proposal.status == "proposed" and proposal.source == CHILD and proposal.repairs == 1
    assert proposal.repair_errors[0].startswith("Your reply had no program:")
    assert "Your reply had no program" in server.requests[1]["messages"][-1]["content"]


def test_no_program_in_any_round_is_a_failed_proposal(llm) -> None:
    _, client = llm([Reply("no code"), Reply("still none")])
    proposal = propose(plan(), [view()], "llm", OperatorConfig(repair_rounds=1), IMPORTS, client=client)
    assert proposal.status == "proposal_failed" and proposal.source is None and proposal.repairs == 1
    assert proposal.reason.startswith("no program in the reply:") and "repair round" in proposal.reason


def test_a_copy_of_the_parent_gets_a_repair_round(llm) -> None:
    renamed = PARENT.replace("Net", "Model").replace("# width", "# the width")
    server, client = llm([Reply(fenced(renamed)), Reply(fenced(CHILD))])
    planned = plan().model_copy(update={"change": MUTATION_CHANGES[2]})
    proposal = propose(planned, [view()], "llm", OperatorConfig(), IMPORTS, client=client)
    assert proposal.source == CHILD and proposal.repairs == 1
    assert "copy of program 1" in proposal.repair_errors[0]
    # Named changes off (the first prompt names none): the copy is asked for its plan's change.
    assert MUTATION_CHANGES[2] not in server.requests[0]["messages"][-1]["content"]
    assert f"Make this one change to program 1 instead: {MUTATION_CHANGES[2]}." in proposal.repair_errors[0]


def test_a_copy_of_a_sibling_gets_a_repair_round(llm, tmp_path) -> None:
    sibling = CHILD.replace("Net", "Sibling")  # the same structure once names are ignored
    server, client = llm([Reply(fenced(CHILD)), Reply(fenced(OTHER))])
    proposal = propose(plan(), [view()], "llm", OperatorConfig(), IMPORTS, client=client, siblings=[sibling])
    assert proposal.source == OTHER and proposal.repairs == 1
    assert proposal.repair_errors[0].startswith("Your program is the same as another child already written")
    # A fresh start: the first prompt again, the copy not shown, the copy named, at the highest temperature.
    first, again = server.requests[0]["messages"], server.requests[1]["messages"]
    assert len(again) == len(first) and again[:-1] == first[:-1] and not any(m["role"] == "assistant" for m in again)
    assert again[-1]["content"].startswith(first[-1]["content"])
    assert "It was the same as another child already written" in again[-1]["content"]
    assert server.requests[1]["temperature"] == max(OperatorConfig().temperatures)
    assert "copy repair at T=" in proposal.description
    server, client = llm([Reply(fenced(CHILD))], tmp_path / "fresh-cache")
    alone = propose(plan(), [view()], "llm", OperatorConfig(), IMPORTS, client=client, siblings=[OTHER])
    assert alone.source == CHILD and alone.repairs == 0 and len(server.requests) == 1


def test_a_mutation_asked_for_a_change_names_it_in_the_prompt_and_in_its_copy_repair(llm) -> None:
    change = MUTATION_CHANGES[0]
    asked = plan().model_copy(update={"change": change})
    server, client = llm([Reply(fenced(PARENT)), Reply(fenced(CHILD))])
    proposal = propose(asked, [view()], "llm", OperatorConfig(named_changes=True), IMPORTS, client=client)
    assert proposal.source == CHILD and proposal.repairs == 1
    first = server.requests[0]["messages"][-1]["content"]
    assert f"this ONE change to its architecture: {change}" in first
    assert "for example" not in first  # the open menu is only for a mutation without a change
    assert proposal.repair_errors[0].startswith("Your program is a copy of program 1")
    assert f"Make this one change to program 1 instead: {change}." in server.requests[1]["messages"][-1]["content"]
    assert f"asked to {change}" in proposal.description
    server, client = llm([Reply(fenced(CHILD))])
    default = propose(asked, [view()], "llm", OperatorConfig(), IMPORTS, client=client)  # named_changes off
    assert change not in server.requests[0]["messages"][-1]["content"] and "asked to" not in default.description


def test_a_resumed_run_replays_the_same_rounds_from_the_cache(llm, tmp_path) -> None:
    steps = [Reply("nothing"), Reply(fenced(PARENT.replace("128", "7"))), Reply(fenced(CHILD))]
    check = lambda s: "too small" if "7" in s else None  # noqa: E731
    server, client = llm(steps, tmp_path / "run")
    first = propose(plan(), [view()], "llm", OperatorConfig(), IMPORTS, client=client, check=check)
    assert first.repairs == 2 and first.source == CHILD and len(server.requests) == 3
    replay_server, replay_client = llm([], tmp_path / "run")
    again = propose(plan(), [view()], "llm", OperatorConfig(), IMPORTS, client=replay_client, check=check)
    assert replay_server.requests == []  # every round from the cache
    assert again.model_dump(exclude={"description"}) == first.model_dump(exclude={"description"})


# ---- context length ---------------------------------------------------------------------------


class FitsOnly:
    """A fake client: raises LLMContextLengthError unless ``fits(prompt)``, else returns ``reply``."""

    def __init__(self, fits, reply: str) -> None:
        self.fits, self.reply, self.prompts = fits, reply, []

    def complete(self, messages, temperature, sample_index=0, seed=None, json_mode=False):
        prompt = "\n".join(m["content"] for m in messages)
        self.prompts.append(prompt)
        if not self.fits(prompt):
            raise LLMContextLengthError("request (9000 tokens) exceeds the available context size (8192 tokens)", 400)
        return LLMReply(text=self.reply, model="fake")


def test_a_prompt_too_long_is_sent_again_without_docstrings_and_comments() -> None:
    client = FitsOnly(lambda prompt: "A masked mean pool" not in prompt, fenced(CHILD))
    proposal = propose(plan(), [view()], "llm", OperatorConfig(), IMPORTS, client=client)  # type: ignore[arg-type]
    assert proposal.status == "proposed" and proposal.source == CHILD and proposal.trimmed == 1
    assert len(client.prompts) == 2 and "# width" not in client.prompts[1]


def test_a_crossover_too_long_keeps_only_the_first_parent() -> None:
    client = FitsOnly(lambda prompt: "Program 2" not in prompt, fenced(CHILD))
    parents = [view(), view("p2", OTHER)]
    proposal = propose(plan("crossover", ("p1", "p2")), parents, "llm", OperatorConfig(), IMPORTS, client=client)  # type: ignore[arg-type]
    assert proposal.status == "proposed" and proposal.trimmed == 2 and len(client.prompts) == 3


def test_a_prompt_that_never_fits_is_a_failed_proposal() -> None:
    client = FitsOnly(lambda prompt: False, fenced(CHILD))
    proposal = propose(plan(), [view()], "llm", OperatorConfig(), IMPORTS, client=client)  # type: ignore[arg-type]
    assert proposal.status == "proposal_failed" and proposal.source is None and proposal.trimmed == 1
    assert "does not fit the model's context" in proposal.reason and "exceeds the available context" in proposal.reason
    assert len(client.prompts) == 2
    bare = FitsOnly(lambda prompt: False, fenced(CHILD))
    propose(plan(), [view(source=compact_source(PARENT))], "llm", OperatorConfig(), IMPORTS, client=bare)  # type: ignore[arg-type]
    assert len(bare.prompts) == 1  # nothing to compact: the same prompt is not sent again


def test_the_scripted_server_s_context_error_gets_a_shorter_prompt(llm) -> None:
    """The same path over HTTP: a 400 naming the context size, then the compacted prompt is answered."""
    message = "the request exceeds the available context size (4096 tokens), try increasing it"
    server, client = llm([Error(400, message, type="exceed_context_size_error"), Reply(fenced(CHILD))])
    proposal = propose(plan(), [view()], "llm", OperatorConfig(), IMPORTS, client=client)
    if proposal.reason.startswith("LLM request failed") and "context size" in proposal.reason:
        pytest.skip("this client maps the 400 to LLMRequestError, not LLMContextLengthError, yet")
    assert proposal.status == "proposed" and proposal.source == CHILD and proposal.trimmed == 1
    assert "A masked mean pool" in user_text(server.requests[0])
    assert "A masked mean pool" not in user_text(server.requests[1])
