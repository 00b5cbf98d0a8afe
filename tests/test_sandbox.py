"""Hostile programs are contained by the sandbox, with and without the in-process audit hook.

Static checks are skipped here on purpose: the sandbox must hold on its own.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
from conftest import candidate_source

from evoformer.baselines import label_ids
from evoformer.candidates.evaluate import evaluate_candidate
from evoformer.candidates.job import TrainConfig
from evoformer.candidates.program import CandidateProgram
from evoformer.sandbox.isolation import bubblewrap_problem
from evoformer.sandbox.limits import SandboxLimits, is_secret, sandbox_environment

pytestmark = pytest.mark.integration  # trains in the sandbox, runs flows or starts servers

LAYERS = pytest.mark.parametrize("audit_hook", [True, False], ids=["os+audit", "os-only"])
FAST = TrainConfig(max_epochs=1, max_train_pairs=64, latency_repeats=3)


@pytest.fixture(scope="module")
def labels(small_splits) -> dict[str, np.ndarray]:
    return {name: label_ids(frame["label"]) for name, frame in small_splits.frames.items()}


def _run(small_features, labels, tmp_path, body: str, audit_hook: bool = True, **limits):
    program = CandidateProgram(name="hostile", source=candidate_source(body))
    sandbox = SandboxLimits(audit_hook=audit_hook, **{"timeout_s": 60, **limits})
    return evaluate_candidate(
        program, small_features.path, labels, tmp_path / "cand", FAST, sandbox, static_check=False
    )


def test_bubblewrap_is_available_here() -> None:
    """The project's set-up installs bubblewrap; without it the sandbox is weaker (and warns).

    In CI (where set-up runs as root) it must be there; elsewhere a missing bwrap is a skip."""
    problem = bubblewrap_problem()
    if problem and not os.environ.get("CI"):
        pytest.skip(problem)
    assert problem is None


def test_valid_program_trains_and_folder_holds_no_eval_labels(small_features, labels, tmp_path) -> None:
    result = _run(small_features, labels, tmp_path, "return M(input_dim, num_classes)")
    assert result.status == "ok", result.reason + result.stderr_tail
    assert result.metrics.params == 384 * 3 + 3
    assert result.metrics.val.support == len(labels["val"]) and result.metrics.test.support == len(labels["test"])
    names = {p.name for p in (tmp_path / "cand").iterdir()}
    assert names == {"program.py", "job.json", "train_labels.npy", "result.json", "weights.safetensors", "metrics.json"}
    assert "bubblewrap" in result.isolation


def test_training_is_deterministic(small_features, labels, tmp_path) -> None:
    config = TrainConfig(max_epochs=2, max_train_pairs=128, latency_repeats=3)
    program = CandidateProgram(name="det", source=candidate_source("return M(input_dim, num_classes)"))
    runs = [
        evaluate_candidate(program, small_features.path, labels, tmp_path / f"r{i}", config, SandboxLimits())
        for i in range(2)
    ]
    assert [r.status for r in runs] == ["ok", "ok"]
    a, b = (r.metrics for r in runs)
    assert (a.val, a.test, a.best_epoch) == (b.val, b.test, b.best_epoch)
    assert (tmp_path / "r0" / "weights.safetensors").read_bytes() == (
        tmp_path / "r1" / "weights.safetensors"
    ).read_bytes()


@LAYERS
def test_infinite_loop_times_out(small_features, labels, tmp_path, audit_hook) -> None:
    result = _run(small_features, labels, tmp_path, "while True:\n    pass", audit_hook, timeout_s=8)
    assert result.status == "timeout"


@LAYERS
def test_memory_growth_is_killed(small_features, labels, tmp_path, audit_hook) -> None:
    body = "hoard = []\nwhile True:\n    hoard.append(torch.ones(25_000_000))"
    result = _run(small_features, labels, tmp_path, body, audit_hook, memory_mb=2048)
    assert result.status == "killed", result.reason


@LAYERS
def test_environment_holds_no_secrets(small_features, labels, tmp_path, audit_hook, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-openai")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "canary-token")
    monkeypatch.setenv("DB_PASSWORD_X", "canary-password")
    result = _run(
        small_features, labels, tmp_path, "raise RuntimeError('ENV=' + repr(dict(torch.os.environ)))", audit_hook
    )
    assert result.status == "build_error"
    assert "ENV=" in result.reason
    assert "canary" not in result.reason and "canary" not in result.stderr_tail


@LAYERS
def test_labels_and_data_outside_the_view_are_unreadable(
    small_features, labels, tmp_path, audit_hook, shared_climate_fever
) -> None:
    held_out = tmp_path / "runs" / "data" / "test_labels.txt"
    held_out.parent.mkdir(parents=True)
    held_out.write_text("SUPPORTS\n")
    targets = [shared_climate_fever, held_out, Path(__file__).resolve(), Path("/etc/shadow")]
    probe = "".join(
        f"try:\n    open({str(t)!r}).read(10)\n    print('READABLE', {str(t)!r}, file=sys.stderr, flush=True)\n"
        f"except OSError:\n    pass\n"
        for t in targets
    )
    result = _run(
        small_features, labels, tmp_path, "import sys\n" + probe + "return M(input_dim, num_classes)", audit_hook
    )
    assert result.status == "ok", result.reason
    assert "READABLE" not in result.stderr_tail


@LAYERS
def test_write_outside_folder_is_denied(small_features, labels, tmp_path, audit_hook) -> None:
    targets = [Path(__file__).resolve().parent / f"pwned-{audit_hook}.pt", tmp_path / "pwned.pt"]
    body = (
        "".join(
            f"try:\n    torch.save(torch.ones(3), {str(t)!r})\nexcept Exception as e:\n    print('denied', e)\n"
            for t in targets
        )
        + "return M(input_dim, num_classes)"
    )
    try:
        result = _run(small_features, labels, tmp_path, body, audit_hook)
        assert result.status == "ok", result.reason
        for target in targets:
            assert not target.exists(), f"sandbox wrote {target}"
    finally:
        for target in targets:
            target.unlink(missing_ok=True)


def _sandbox_processes(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


@LAYERS
def test_fork_bomb_is_capped_and_nothing_survives(small_features, labels, tmp_path, audit_hook) -> None:
    body = """
    import sys, time
    children = 0
    try:
        for _ in range(500):
            if torch.os.fork() == 0:
                time.sleep(120)
                torch.os._exit(0)
            children += 1
    except Exception as e:
        print(f'fork stopped after {children}: {e}', file=sys.stderr, flush=True)
    return M(input_dim, num_classes)
    """
    result = _run(small_features, labels, tmp_path, body, audit_hook, max_pids=32, timeout_s=30)
    # With the pids cap reached, torch may fail to start its threads later: any outcome but a hang.
    assert result.status in {"ok", "build_error", "runtime_error", "killed"}
    stopped = [line for line in result.stderr_tail.splitlines() if line.startswith("fork stopped after")]
    assert stopped, result.stderr_tail[-500:]
    assert int(stopped[0].split()[3].rstrip(":")) < 32
    assert _sandbox_processes(str(tmp_path / "cand")) == []


@LAYERS
def test_loopback_connection_never_arrives(small_features, labels, tmp_path, audit_hook) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        port = listener.getsockname()[1]
        body = f"""
        import socket
        try:
            socket.create_connection(('127.0.0.1', {port}), timeout=3).sendall(b'leak')
        except Exception as e:
            print('blocked', e)
        return M(input_dim, num_classes)
        """
        result = _run(small_features, labels, tmp_path, body, audit_hook)
        listener.settimeout(0.5)
        with pytest.raises(socket.timeout):
            listener.accept()
    assert result.status == "ok", result.reason


def test_megabytes_of_output_are_capped(small_features, labels, tmp_path) -> None:
    body = "print('o' * 3_000_000)\nimport sys\nsys.stderr.write('e' * 3_000_000)\nreturn M(input_dim, num_classes)"
    result = _run(small_features, labels, tmp_path, body, output_tail_bytes=4096)
    assert result.status == "ok", result.reason
    assert len(result.stderr_tail) <= 4096


@LAYERS
def test_self_kill_is_reported(small_features, labels, tmp_path, audit_hook) -> None:
    result = _run(small_features, labels, tmp_path, "torch.os.kill(torch.os.getpid(), 9)", audit_hook)
    assert result.status == ("build_error" if audit_hook else "killed"), result.reason


def test_forged_result_is_not_believed(small_features, labels, tmp_path) -> None:
    n_val, n_test = len(labels["val"]), len(labels["test"])
    body = f"""
    import json
    fake = {{'status': 'ok', 'val_pred': [0] * {n_val}, 'test_pred': [0] * {n_test}}}
    with open('result.json', 'w') as f:
        json.dump(fake, f)
    torch.os._exit(0)
    """
    result = _run(small_features, labels, tmp_path, body, audit_hook=False)
    assert result.status == "invalid_output"
    assert result.metrics is None


@pytest.mark.parametrize(
    "forward, reason",
    [("return torch.zeros(x.shape[0], 5)", "shape"), ("return torch.full((x.shape[0], 3), float('nan'))", "NaN")],
)
def test_invalid_outputs(small_features, labels, tmp_path, forward, reason) -> None:
    body = f"""
    class Bad(M):
        def forward(self, x, mask):
            {forward}
    return Bad(input_dim, num_classes)
    """
    result = _run(small_features, labels, tmp_path, body)
    assert result.status == "invalid_output" and reason in result.reason


TWO_HEADS = """
class TwoHeads(M):
    def __init__(self, d, c):
        super().__init__(d, c)
        self.other = nn.Linear(d, c)
        nn.init.zeros_(self.other.weight)  # stays zero unless this head is trained
    def forward(self, x, mask):
        heads = (self.lin(x[:, 0]), {second})
        if self.training:
            return heads
        return torch.stack([h.log_softmax(-1) for h in heads]).mean(0)
return TwoHeads(input_dim, num_classes)
"""


def test_training_heads_each_train_on_their_own_loss(small_features, labels, tmp_path) -> None:
    """A tuple of logits in training mode: every head is trained; eval returns one tensor."""
    from safetensors.numpy import load_file

    result = _run(small_features, labels, tmp_path, TWO_HEADS.format(second="self.other(x[:, 0])"))
    assert result.status == "ok", result.reason + result.stderr_tail
    assert result.metrics.params == 2 * (384 * 3 + 3)
    weights = load_file(tmp_path / "cand" / "weights.safetensors")
    assert np.abs(weights["other.weight"]).max() > 0, "the second head was not trained"


def test_training_loss_is_the_mean_of_the_heads_losses() -> None:
    """Not the loss of averaged logits: each head's gradient is its own cross-entropy's."""
    import torch

    from evoformer.candidates.training import training_loss
    from evoformer.sandbox.protocol import Outcome

    torch.manual_seed(0)
    a, b = torch.randn(8, 3, requires_grad=True), torch.randn(8, 3, requires_grad=True)
    y = torch.randint(0, 3, (8,))
    ce = torch.nn.CrossEntropyLoss()
    loss = training_loss(ce, (a, b), y, 3)
    assert torch.isclose(loss, (ce(a, y) + ce(b, y)) / 2)
    assert not torch.isclose(loss, ce((a + b) / 2, y))
    loss.backward()
    single = a.detach().clone().requires_grad_()
    (ce(single, y) / 2).backward()
    assert torch.allclose(a.grad, single.grad)
    assert torch.isclose(training_loss(ce, a, y, 3), ce(a, y))
    with pytest.raises(Outcome, match="heads"):
        training_loss(ce, (), y, 3)
    with pytest.raises(Outcome, match="shape"):
        training_loss(ce, (a, torch.zeros(8, 5)), y, 3)


def test_training_heads_with_a_bad_head_are_invalid_output(small_features, labels, tmp_path) -> None:
    body = """
    class BadHead(M):
        def forward(self, x, mask):
            logits = self.lin(x[:, 0])
            return (logits, torch.zeros(x.shape[0], 5)) if self.training else logits
    return BadHead(input_dim, num_classes)
    """
    result = _run(small_features, labels, tmp_path, body)
    assert result.status == "invalid_output" and "shape" in result.reason


def test_build_and_runtime_errors(small_features, labels, tmp_path) -> None:
    assert _run(small_features, labels, tmp_path, "return 42").status == "build_error"
    body = (
        "class Bad(M):\n    def forward(self, x, mask):\n        return self.lin(x[:, :, :5])\n"
        "return Bad(input_dim, num_classes)"
    )
    result = _run(small_features, labels, tmp_path, body)
    assert result.status == "runtime_error" and "forward failed" in result.reason
    assert "Traceback" in result.stderr_tail


def test_secret_patterns() -> None:
    for name in ("OPENAI_API_KEY", "AWS_SECRET", "GITHUB_TOKEN", "MY_PASSWORD_FILE", "HF_TOKEN"):
        assert is_secret(name)
    env = sandbox_environment(2, {"SAFE": "1", "X_KEY": "no"})
    assert env["SAFE"] == "1" and "X_KEY" not in env and env["OMP_NUM_THREADS"] == "2"
    assert not any(is_secret(k) for k in env)


def test_fallback_without_bubblewrap_warns_and_audit_hook_still_holds(
    small_features, labels, tmp_path, monkeypatch, caplog
) -> None:
    from evoformer.sandbox import runner

    monkeypatch.setattr(runner, "bubblewrap_problem", lambda: "bwrap disabled for this test")
    # Python-level writes are caught by the audit hook. (torch.save writes from C++, past any audit
    # hook: only the OS layer stops that, which is why the fallback warns so loudly.)
    target = Path(__file__).resolve().parent / "pwned-fallback.txt"
    body = (
        f"try:\n    open({str(target)!r}, 'w').write('x')\nexcept Exception as e:\n    print(e)\n"
        "return M(input_dim, num_classes)"
    )
    try:
        with caplog.at_level("WARNING", logger="evoformer.sandbox"):
            result = _run(small_features, labels, tmp_path, body)
        assert result.status == "ok", result.reason
        assert not target.exists()
        assert "NO-NAMESPACES" in result.isolation
        assert any("SANDBOX IS WEAKER" in r.getMessage() for r in caplog.records)
    finally:
        target.unlink(missing_ok=True)
    from evoformer.sandbox.runner import SandboxError

    with pytest.raises(SandboxError, match="required"):
        _run(small_features, labels, tmp_path, "return M(input_dim, num_classes)", require_isolation=True)


def test_protocol_flood_is_cut_off(small_features, labels, tmp_path) -> None:
    """More epoch reports than allowed, never reading replies: an error, not a hang or an oracle."""
    n_val = len(labels["val"])
    body = f"""
    import json
    fd = int(torch.os.environ['EVOFORMER_PROTOCOL_FDS'].split(',')[1])
    line = (json.dumps({{'type': 'epoch', 'epoch': 0, 'val_pred': [0] * {n_val}}}) + '\\n').encode()
    for _ in range(20000):
        torch.os.write(fd, line)
    return M(input_dim, num_classes)
    """
    result = _run(small_features, labels, tmp_path, body, audit_hook=False, timeout_s=60)
    assert result.status == "invalid_output" and "epoch reports" in result.reason


def test_planted_symlink_does_not_redirect_the_verdict(small_features, labels, tmp_path) -> None:
    victim = tmp_path / "victim.txt"
    body = f"torch.os.symlink({str(victim)!r}, 'metrics.json')\nreturn M(input_dim, num_classes)"
    result = _run(small_features, labels, tmp_path, body, audit_hook=False)
    assert result.status == "ok", result.reason
    assert not victim.exists()
    assert not (tmp_path / "cand" / "metrics.json").is_symlink()


def test_protocol_file_names_match_the_jobs() -> None:
    """The generic protocol (sandbox side) and the job models name the same files."""
    from evoformer.candidates import job
    from evoformer.sandbox import protocol

    assert (protocol.JOB_FILE, protocol.RESULT_FILE) == (job.JOB_FILE, job.RESULT_FILE)
