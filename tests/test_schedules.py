"""Schedules on a real ``prefect server start``: the served ``evolve-nightly`` deployment gets its
scheduled runs, an interval deployment really runs, and no server service fails.

The server and the served processes run on loopback with a temporary ``PREFECT_HOME``, each in its
own process group, which the fixtures end (SIGTERM, then SIGKILL) even when a test fails.
Service loops are shortened so that every service runs several times within the test.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.server, pytest.mark.integration]

SCHEDULER_LOOP_S = 5  # PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS (default 60)
RECENT_DEPLOYMENTS_LOOP_S = 5  # the scheduler's loop for just-created deployments (its default)
OTHER_LOOPS_S = 2  # late runs, foreman, cancellation cleanup, pause expirations, repossessor, ...
TICK_INTERVAL_S = 5
SERVER_START_TIMEOUT_S = 180
SERVE_START_TIMEOUT_S = 120

SERVER_SETTINGS = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": str(SCHEDULER_LOOP_S),
    "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": str(RECENT_DEPLOYMENTS_LOOP_S),
    "PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS": str(OTHER_LOOPS_S),
    "PREFECT_SERVER_SERVICES_FOREMAN_LOOP_SECONDS": str(OTHER_LOOPS_S),
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_LOOP_SECONDS": str(OTHER_LOOPS_S),
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_LOOP_SECONDS": str(OTHER_LOOPS_S),
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": str(OTHER_LOOPS_S),
    "PREFECT_SERVER_SERVICES_CLEANUP_RECONCILER_LOOP_SECONDS": str(OTHER_LOOPS_S),
}

# A tiny flow, served from its own file with an interval schedule.
TICK_FLOW = textwrap.dedent(
    f"""
    from prefect import flow, serve

    @flow(name="schedule-tick")
    def tick() -> str:
        return "tick"

    if __name__ == "__main__":
        serve(tick.to_deployment(name="every-few-seconds", interval={TICK_INTERVAL_S}), limit=1)
    """
)

# A log record in Prefect's console format: "12:00:00.000 | ERROR   | prefect.server - ...".
RECORD_START = re.compile(r"^\d\d:\d\d:\d\d\.\d+ \| *(\w+) *\| ")
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b:?")
# SQLite's lock contention: Prefect 3.8.8's services read, then write, in DEFERRED transactions, so
# one that overlaps another writer fails with this; it is retried (the next loop or a docket retry).
SQLITE_LOCKED = {
    "sqlite3.OperationalError: database is locked",
    "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked",
}


def service_errors(log_text: str) -> tuple[list[str], list[str]]:
    """The ERROR/CRITICAL records and tracebacks of a server log: (errors, SQLite lock contention)."""
    records: list[list[str]] = [[]]
    for line in log_text.splitlines():
        if RECORD_START.match(line):
            records.append([])
        records[-1].append(line)
    errors, locked = [], []
    for record in records:
        match = RECORD_START.match(record[0]) if record else None
        if not (match and match.group(1) in ("ERROR", "CRITICAL")) and not any("Traceback" in line for line in record):
            continue
        exceptions = {line.strip() for line in record if EXCEPTION_LINE.match(line)}
        (locked if exceptions and exceptions <= SQLITE_LOCKED else errors).append("\n".join(record))
    return errors, locked


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(cmd: list[str], log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen, grace_s: float = 15.0) -> None:
    """End the process's whole group: SIGTERM, then SIGKILL after ``grace_s``."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; whatever it started in its group goes too.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return


def _tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


class Server:
    def __init__(self, url: str, log: Path, env: dict[str, str]):
        self.url, self.log, self.env = url, log, env

    def request(self, method: str, path: str, body: dict | None = None):
        """One API call; a 503 (SQLite busy, which Prefect's own client retries) is retried."""
        import httpx

        for attempt in range(10):
            response = httpx.request(method, self.url + path, json=body, timeout=30)
            if response.status_code != 503:
                break
            time.sleep(0.5 * (attempt + 1))
        response.raise_for_status()
        return response.json() if response.content else None

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, body: dict):
        return self.request("POST", path, body)

    def deployment(self, flow_name: str, name: str) -> dict:
        return self.get(f"/deployments/name/{flow_name}/{name}")

    def flow_runs(self, deployment_id: str) -> list[dict]:
        return self.post("/flow_runs/filter", {"deployments": {"id": {"any_": [deployment_id]}}, "limit": 200})


def _wait_for(predicate, timeout_s: float, what: str, logs: list[Path], interval_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s:.0f} s waiting for {what}\n"
                + "\n".join(f"--- {log.name} ---\n{_tail(log)}" for log in logs)
            )
        time.sleep(interval_s)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """``prefect server start`` on a free loopback port, with its own temporary PREFECT_HOME."""
    home = tmp_path_factory.mktemp("prefect-home")
    log = home / "server.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(SERVER_SETTINGS, PREFECT_HOME=str(home), PREFECT_API_URL=url, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    proc = _start(cmd, log, env, home)
    try:
        import httpx

        def healthy() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"prefect server exited with {proc.returncode}\n{_tail(log)}")
            try:
                return httpx.get(url + "/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_for(healthy, SERVER_START_TIMEOUT_S, "the server's /api/health", [log])
        yield Server(url, log, env)
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def service_probes(prefect_server: Server) -> dict:
    """Work for the services that the schedules alone don't give them: each must get it done.

    Done before anything is served: on SQLite, a service that writes while a runner polls the server
    (or while another service writes) may log "database is locked" (see ``SQLITE_LOCKED``).
    """
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()
    flow = prefect_server.post("/flows/", {"name": "schedule-unserved"})

    def flow_run(state: dict) -> str:
        return prefect_server.post("/flow_runs/", {"flow_id": flow["id"], "state": state})["id"]

    def force(run_id: str, state: dict) -> None:
        prefect_server.post(f"/flow_runs/{run_id}/set_state", {"state": state, "force": True})

    logs = [prefect_server.log]
    state = lambda run_id: prefect_server.get(f"/flow_runs/{run_id}")["state_name"]  # noqa: E731
    # One after the other, so that two services rarely write at the same moment.
    # A scheduled run that nothing picks up: the late runs service marks it Late.
    late = flow_run({"type": "SCHEDULED", "name": "Scheduled", "state_details": {"scheduled_time": past}})
    _wait_for(lambda: state(late) == "Late", 30, "the late runs service to mark a run Late", logs)
    # A run paused past its timeout: the pause expirations service fails it.
    paused = flow_run({"type": "RUNNING", "name": "Running"})
    force(paused, {"type": "PAUSED", "name": "Paused", "state_details": {"pause_timeout": past}})
    _wait_for(lambda: state(paused) == "Failed", 30, "the pause expirations service to fail an expired pause", logs)
    # A worker that stops heartbeating: the foreman marks it offline.
    prefect_server.post("/work_pools/", {"name": "schedule-test-pool", "type": "process"})
    prefect_server.post(
        "/work_pools/schedule-test-pool/workers/heartbeat",
        {"name": "schedule-test-worker", "heartbeat_interval_seconds": 1},
    )
    _wait_for(
        lambda: (
            [w["status"] for w in prefect_server.post("/work_pools/schedule-test-pool/workers/filter", {})]
            == ["OFFLINE"]
        ),
        30,
        "the foreman to mark a silent worker offline",
        logs,
    )
    # A cancelled run: the cancellation cleanup looks for its unfinished task runs (nothing to see).
    force(flow_run({"type": "RUNNING", "name": "Running"}), {"type": "CANCELLED", "name": "Cancelled"})
    return {"late": late, "paused": paused}


def _avoid_the_nightly_slot() -> None:
    """The served evolve deployment would start a real run at 02:00 UTC: don't serve it just before."""
    now = dt.datetime.now(dt.UTC)
    slot = now.replace(hour=2, minute=0, second=0, microsecond=0)
    if dt.timedelta(0) <= slot - now < dt.timedelta(minutes=3):
        time.sleep((slot - now).total_seconds() + 30)


@pytest.fixture(scope="module")
def served(prefect_server: Server, service_probes: dict, tmp_path_factory):
    """``python -m deployments.evolve`` (as the README says) and the tick flow, each served by its own process.

    Yields when the project's deployments were registered (``time.monotonic()``) and the logs.
    """
    _avoid_the_nightly_slot()
    folder = tmp_path_factory.mktemp("served")
    (folder / "tick_flow.py").write_text(TICK_FLOW)
    project_log, tick_log = folder / "serve-project.log", folder / "serve-tick.log"
    procs = []
    try:
        procs.append(_start([sys.executable, "-m", "deployments.evolve"], project_log, prefect_server.env, ROOT))
        procs.append(
            _start(
                [sys.executable, "tick_flow.py"],
                tick_log,
                dict(prefect_server.env, PREFECT_RUNNER_POLL_FREQUENCY="2"),
                folder,
            )
        )

        def registered():
            for proc, log in zip(procs, (project_log, tick_log), strict=False):
                if proc.poll() is not None:
                    raise AssertionError(f"serve process exited with {proc.returncode}\n{_tail(log)}")
            return "being served" in project_log.read_text(errors="replace")

        _wait_for(
            registered,
            SERVE_START_TIMEOUT_S,
            "the project's deployments to be served",
            [project_log, prefect_server.log],
        )
        yield {"registered": time.monotonic(), "logs": [project_log, tick_log, prefect_server.log]}
    finally:
        for proc in procs:
            _stop(proc)


def test_served_evolve_deployment_gets_scheduled_runs_within_two_scheduler_cycles(
    prefect_server: Server, served
) -> None:
    deployment = prefect_server.deployment("evolve", "evolve-nightly")
    # What `serve` registers: the deployment is not paused and its cron schedule is active.
    assert deployment["paused"] is False
    assert [(s["schedule"]["cron"], s["active"]) for s in deployment["schedules"]] == [("0 2 * * *", True)]

    cycles_s = 2 * max(SCHEDULER_LOOP_S, RECENT_DEPLOYMENTS_LOOP_S)
    budget_s = cycles_s - (time.monotonic() - served["registered"])

    def scheduled():
        runs = [r for r in prefect_server.flow_runs(deployment["id"]) if r["state_type"] == "SCHEDULED"]
        return runs if len(runs) >= 3 else None  # the scheduler's min_runs

    runs = _wait_for(
        scheduled,
        max(budget_s, 0.0) + 2.0,
        f"3 scheduled evolve runs (two scheduler cycles, {cycles_s} s)",
        served["logs"],
        interval_s=0.25,
    )
    starts = sorted(dt.datetime.fromisoformat(r["expected_start_time"]) for r in runs)
    now = dt.datetime.now(dt.UTC)
    assert all(s > now and (s.hour, s.minute) == (2, 0) and s.utcoffset() == dt.timedelta(0) for s in starts), starts
    assert [(b - a) for a, b in zip(starts, starts[1:], strict=False)] == [dt.timedelta(days=1)] * (len(starts) - 1)
    assert all(r["auto_scheduled"] and r["parameters"]["params"]["generations"] == 3 for r in runs)


def _completed_tick_run(prefect_server: Server, served, timeout_s: float = 90) -> dict:
    def tick_deployment():
        try:
            return prefect_server.deployment("schedule-tick", "every-few-seconds")
        except Exception:
            return None

    deployment = _wait_for(tick_deployment, SERVE_START_TIMEOUT_S, "the tick deployment", served["logs"])
    assert deployment["schedules"][0]["schedule"]["interval"] == TICK_INTERVAL_S

    def completed():
        runs = prefect_server.flow_runs(deployment["id"])
        return [r for r in runs if r["state_type"] == "COMPLETED" and r["auto_scheduled"]]

    (run, *_) = _wait_for(completed, timeout_s, "a scheduled tick run to reach Completed", served["logs"])
    # One is enough: pausing deletes the tick's other scheduled runs, so they neither load the machine nor go late.
    prefect_server.post(f"/deployments/{deployment['id']}/pause_deployment", {})
    return run


# The runner's record when a run it was about to start is gone: pausing the tick deployment (above)
# deletes its scheduled runs, and a runner at capacity may be proposing Pending for one of them.
RUNNER_LOST_RUN = re.compile(r"Failed to update state of flow run '([0-9a-f-]{36})'")


def deleted_run_of(record: str) -> str | None:
    """The id of the flow run a runner record failed to update because the server answered 404, else None."""
    match = RUNNER_LOST_RUN.search(record)
    return match.group(1) if match and "404 Not Found" in record and "not found" in record else None


def _raced_a_deleted_run(prefect_server: Server, record: str) -> bool:
    """True only for a runner's 404 on a run that the server really no longer has (the test deleted it)."""
    import httpx

    run_id = deleted_run_of(record)
    if run_id is None:
        return False
    try:
        prefect_server.get(f"/flow_runs/{run_id}")
    except httpx.HTTPStatusError as error:
        return error.response.status_code == 404
    return False


def test_interval_deployment_starts_a_run_that_completes(prefect_server: Server, served) -> None:
    run = _completed_tick_run(prefect_server, served)
    assert run["state_name"] == "Completed" and run["run_count"] == 1


def test_server_services_log_no_error(prefect_server: Server, service_probes: dict, served) -> None:
    """Checked after every service has had several loops with work to do, and a scheduled run has run."""
    try:
        _completed_tick_run(prefect_server, served, timeout_s=30)
    except AssertionError:
        pass  # test_interval_deployment_starts_a_run_that_completes says so; here, the log is the point
    # At least two scheduler cycles since the deployments came, and a few loops of the other services.
    time.sleep(max(2 * SCHEDULER_LOOP_S - (time.monotonic() - served["registered"]), 0) + 2 * OTHER_LOOPS_S)
    errors, locked = service_errors(prefect_server.log.read_text(errors="replace"))
    assert not errors, "service errors in the server log:\n" + "\n".join(errors)
    for log in served["logs"][:2]:  # the served processes (runners) too
        runner_errors, runner_locked = service_errors(log.read_text(errors="replace"))
        assert [e for e in runner_errors if not _raced_a_deleted_run(prefect_server, e)] == [], _tail(log)
        assert runner_locked == [], _tail(log)
    if locked:  # the work got done anyway (the probes and the scheduled runs are checked above)
        warnings.warn(
            f"{len(locked)} SQLite 'database is locked' tracebacks in the server log (Prefect on SQLite; retried)",
            stacklevel=2,
        )


def test_service_errors_tells_errors_from_sqlite_lock_contention() -> None:
    log = textwrap.dedent(
        """
        10:00:00.000 | INFO    | prefect.server - fine
        10:00:01.000 | ERROR   | docket.dependencies - schedule_deployments()
        Traceback (most recent call last):
          File "x.py", line 1, in f
        sqlalchemy.exc.InvalidRequestError: Can't evaluate bulk DML statement; please supply a bulk_dml decorated fn
        10:00:02.000 | ERROR   | prefect.server - Encountered error during state validation
        Traceback (most recent call last):
        sqlite3.OperationalError: database is locked

        The above exception was the direct cause of the following exception:

        Traceback (most recent call last):
        sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked
        [SQL: INSERT INTO flow_run_state (id) VALUES (:id)]
        10:00:03.000 | WARNING | prefect.server - a warning
        """
    )
    errors, locked = service_errors(log)
    assert len(errors) == 1 and "bulk DML" in errors[0]
    assert len(locked) == 1 and "flow_run_state" in locked[0]
    assert deleted_run_of(errors[0]) is None


def test_deleted_run_of_names_only_a_404_on_a_flow_runs_state() -> None:
    run_id = "01a233f3-ecb0-764f-afbe-0d1ba4423fca"
    record = (
        f"23:32:38.943 | ERROR   | prefect.runner.state_proposer - Failed to update state of flow run '{run_id}'\n"
        "Traceback (most recent call last):\n"
        "prefect.exceptions.PrefectHTTPStatusError: Client error '404 Not Found' for url "
        f"'http://127.0.0.1:1/api/flow_runs/{run_id}/set_state' - Response: "
        f"{{'exception_message': 'Flow run with id {run_id} not found'}}\n"
        "prefect.exceptions.ObjectNotFound: None"
    )
    assert service_errors(record)[0] == [record]  # still an error record: only the check above forgives it
    assert deleted_run_of(record) == run_id
    assert deleted_run_of(record.replace("404 Not Found", "500 Internal Server Error")) is None
    assert deleted_run_of(record.replace("Failed to update state", "Failed to start")) is None


def test_service_errors_reads_a_bare_traceback() -> None:
    assert service_errors("Traceback (most recent call last):\nKeyError: 'x'\n") == (
        ["Traceback (most recent call last):\nKeyError: 'x'"],
        [],
    )
