"""The compose deployment's services, run natively: one real `sales_nightly` run through the REST API.

No Docker here, so this test runs the very commands docker-compose.yml gives each service (through
docker/entrypoint.sh, like the image does) from .venv/bin, with the compose file's environment, against the
local PostgreSQL on loopback: a fresh metadata database, docker/airflow-init.sh (db migrate + the
duckdb_writer pool), then api-server, scheduler, dag-processor and triggerer, each in its own process group.
It waits until every service is healthy (the api-server's /api/v2/monitor/health and each compose health
check command), logs in with the simple auth manager's admin user (password file written by the entrypoint
from AIRFLOW_ADMIN_PASSWORD), unpauses sales_nightly, triggers the run for 2026-10-31 and waits for it to
succeed, then checks the published warehouse. Teardown stops every process group (SIGTERM, then SIGKILL),
kills any straggler carrying this test's marker variable, and drops the database, whatever happened.

Marked e2e (the lead will add a `services` marker). Skipped when PostgreSQL is not on 127.0.0.1:5432.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.services]

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
CONTAINER_ROOT = "/opt/salesos/"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
AS_OF = "2026-10-31"
SERVICES = ["api-server", "scheduler", "dag-processor", "triggerer"]
RUN_TIMEOUT = 600
HEALTH_TIMEOUT = 240
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")

psycopg2 = pytest.importorskip("psycopg2")


def _pg_connect(dbname: str = "postgres"):
    con = psycopg2.connect(dbname=dbname, connect_timeout=3, **PG)
    con.autocommit = True
    return con


def _pg_available() -> bool:
    try:
        _pg_connect().close()
        return True
    except Exception:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _interpolate(value: str, env_file: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?message} against the test's '.env'."""

    def repl(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = env_file.get(name)
        if op in (":?", "?") and not value:
            raise KeyError(f"{name} is required by docker-compose.yml: {arg}")
        if op in (":-", "-") and not value:
            return arg
        return value or ""

    return INTERPOLATION.sub(repl, value).replace("$$", "$")


class Stack:
    """The processes of one native deployment, their logs, and how to reach them."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.marker = f"salesos-native-{secrets.token_hex(6)}"
        self.db = f"salesos_airflow_test_{secrets.token_hex(4)}"
        self.home = tmp / "airflow_home"
        self.landing = tmp / "landing"
        self.data = tmp / "data"
        self.logs = tmp / "service_logs"
        for d in (self.home, self.landing, self.data, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        self.api_port = _free_port()
        self.health_port = _free_port()
        self.base = f"http://127.0.0.1:{self.api_port}"
        self.user = "admin"
        self.password = secrets.token_urlsafe(16)
        self.procs: dict[str, subprocess.Popen] = {}
        self.other_runs: set[str] = set()
        self.compose = yaml.safe_load(COMPOSE_FILE.read_text())
        self.env = self._environment()
        self.timings: dict[str, float] = {}

    # --- environment ------------------------------------------------------------------------------------
    def _environment(self) -> dict[str, str]:
        env_file = {  # what .env would hold
            "POSTGRES_PASSWORD": "not-used-natively",
            "AIRFLOW_FERNET_KEY": "",
            "AIRFLOW_API_SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW_ADMIN_USERNAME": self.user,
            "AIRFLOW_ADMIN_PASSWORD": self.password,
        }
        from cryptography.fernet import Fernet

        env_file["AIRFLOW_FERNET_KEY"] = Fernet.generate_key().decode()
        compose_env = self.compose["x-airflow-common"]["environment"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SALESOS", "_AIRFLOW"))}
        env.update({k: _interpolate(str(v), env_file) for k, v in compose_env.items()})
        # What differs from the containers: hosts, ports and paths on this machine.
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{self.db}",
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base}/execution/",
                "AIRFLOW__API__BASE_URL": self.base,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(self.health_port),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__CORE__PARALLELISM": "4",
                "SALESOS_EXPORTS": str(self.landing),
                "SALESOS_WAREHOUSE": str(self.data / "warehouse" / "salesos.duckdb"),
                "SALESOS_DATA_DIR": str(self.data),
                "SALESOS_SETTINGS": str(ROOT / "tests" / "fast_settings.yml"),
                "SALESOS_DUCKDB_MEMORY_LIMIT": "2GB",
                "SALESOS_NATIVE_TEST_MARKER": self.marker,
                "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            }
        )
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        return env

    def _native(self, argv: list[str]) -> list[str]:
        """A compose command or health check with container paths and ports mapped to this machine."""
        out = []
        for a in argv:
            a = a.replace(CONTAINER_ROOT, f"{ROOT}/")
            a = a.replace("localhost:8080", f"127.0.0.1:{self.api_port}")
            a = a.replace("localhost:8974", f"127.0.0.1:{self.health_port}")
            out.append(a)
        if out[:2] == ["airflow", "api-server"]:
            out = [str(self.api_port) if a == "8080" else a for a in out]
        return out

    # --- processes --------------------------------------------------------------------------------------
    def run_init(self) -> None:
        cmd = ["bash", str(ENTRYPOINT), *self._native(self.compose["services"]["airflow-init"]["command"])]
        log = self.logs / "airflow-init.log"
        with log.open("w") as fh:
            proc = subprocess.run(cmd, env=self.env, stdout=fh, stderr=subprocess.STDOUT, timeout=600,
                                  start_new_session=True)
        assert proc.returncode == 0, f"airflow-init failed:\n{log.read_text()[-4000:]}"

    def start(self, name: str) -> None:
        cmd = ["bash", str(ENTRYPOINT), *self._native(self.compose["services"][name]["command"])]
        fh = (self.logs / f"{name}.log").open("w")
        self.procs[name] = subprocess.Popen(
            cmd, env=self.env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        fh.close()

    def assert_running(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        assert not dead, f"services exited: {dead}\n{self.service_logs()}"

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.procs.values():  # the group may outlive its leader: always SIGKILL what is left
            _signal_group(proc.pid, signal.SIGKILL)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for pid in _pids_with_marker(self.marker):  # anything that left its group (task processes)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    # --- REST API -----------------------------------------------------------------------------------------
    def http(self, method: str, path: str, body: dict | None = None, token: str | None = None,
             timeout: float = 30) -> tuple[int, dict | str]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read().decode()
                status = resp.status
        except urllib.error.HTTPError as e:
            raw, status = e.read().decode(errors="replace"), e.code
        try:
            return status, json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            return status, raw

    def service_logs(self, lines: int = 40) -> str:
        out = []
        for f in sorted(self.logs.glob("*.log")):
            tail = f.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"----- {f.name} (last {lines} lines) -----\n" + "\n".join(tail))
        return "\n".join(out)

    def task_logs(self, lines: int = 80, only: set[str] | None = None) -> str:
        """The tail of each task's log; with `only`, just those tasks (a failure report leads with them)."""
        out = []
        for f in sorted((self.home / "logs").rglob("*.log")):
            if only is not None and not any(f"task_id={t}" in str(f) for t in only):
                continue
            if "dag_id=sales_nightly" in str(f):
                tail = f.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"----- {f.relative_to(self.home)} -----\n" + "\n".join(tail))
        return "\n".join(out) or "(no task logs)"


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _pids_with_marker(marker: str) -> list[int]:
    needle = f"SALESOS_NATIVE_TEST_MARKER={marker}".encode()
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) != os.getpid():
            try:
                if needle in (p / "environ").read_bytes().split(b"\0"):
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


def _wait(what: str, predicate, timeout: float, stack: Stack, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        stack.assert_running()
        try:
            last = predicate()
        except (OSError, urllib.error.URLError) as e:  # not listening yet
            last = repr(e)
        else:
            if last is True:
                return
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last})\n{stack.service_logs()}")


@pytest.fixture
def stack(tmp_path):
    if not _pg_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432 as user postgres")
    if not (VENV_BIN / "airflow").exists() or shutil.which("curl") is None:
        pytest.skip("needs .venv/bin/airflow and curl")
    # Airflow 3 opens an async engine on the metadata database too: PostgreSQL needs asyncpg, which comes with
    # apache-airflow[postgres] (apache-airflow-providers-postgres). PYTHONPATH is passed through, so a
    # throwaway overlay (pip install --target DIR asyncpg) works until the lock file has it.
    probe = subprocess.run([str(VENV_BIN / "python"), "-c", "import asyncpg"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("asyncpg is not installed: Airflow 3 on PostgreSQL needs apache-airflow[postgres] in uv.lock")
    s = Stack(tmp_path)
    con = _pg_connect()
    with con.cursor() as cur:
        cur.execute(f'create database "{s.db}"')
    con.close()
    try:
        yield s
    finally:
        s.stop()
        con = _pg_connect()
        with con.cursor() as cur:
            cur.execute(f'drop database if exists "{s.db}" with (force)')
        con.close()
        leftovers = _pids_with_marker(s.marker)
        assert not leftovers, f"processes left running: {leftovers}"
        print(f"\nnative services timings (s): {json.dumps(s.timings)}")


def test_sales_nightly_runs_on_the_compose_services(stack: Stack, record_property):
    t0 = time.monotonic()
    # the smallest sample (XS, tests only): this test is about the services, and CI time is shared
    from salesos.generate import generate

    generate(stack.landing, scale="XS", seed=3, as_of=date.fromisoformat(AS_OF))
    stack.timings["generate"] = round(time.monotonic() - t0, 1)

    t = time.monotonic()
    stack.run_init()
    con = _pg_connect(stack.db)
    with con.cursor() as cur:
        cur.execute("select slots, description from slot_pool where pool = 'duckdb_writer'")
        assert cur.fetchone() == (1, "DuckDB allows one writing process")
    con.close()
    stack.timings["init"] = round(time.monotonic() - t, 1)

    t = time.monotonic()
    for name in SERVICES:
        stack.start(name)

    def all_healthy():
        status, body = stack.http("GET", "/api/v2/monitor/health", timeout=10)
        if status != 200 or not isinstance(body, dict):
            return f"HTTP {status}"
        states = {k: (v or {}).get("status") for k, v in body.items()}
        return True if set(states.values()) == {"healthy"} and len(states) >= 4 else states

    _wait("/api/v2/monitor/health to report every component healthy", all_healthy, HEALTH_TIMEOUT, stack)
    # The compose health checks themselves, run natively.
    for name in SERVICES:
        test = stack.compose["services"][name]["healthcheck"]["test"]
        assert test[0] == "CMD", test
        argv = stack._native(test[1:])

        def check(argv=argv):
            r = subprocess.run(argv, env=stack.env, capture_output=True, text=True, timeout=120)
            return True if r.returncode == 0 else (r.stdout + r.stderr)[-500:]

        _wait(f"the {name} health check {argv}", check, 120, stack, interval=3)
    stack.timings["services_healthy"] = round(time.monotonic() - t, 1)

    # Log in as the admin user from the password file the entrypoint wrote.
    status, body = stack.http("POST", "/auth/token", {"username": stack.user, "password": stack.password})
    assert status == 201, (status, body)
    token = body["access_token"]
    status, body = stack.http("POST", "/auth/token", {"username": stack.user, "password": "wrong"})
    assert status == 401, (status, body)

    t = time.monotonic()
    _wait("the dag-processor to serialise sales_nightly",
          lambda: stack.http("GET", "/api/v2/dags/sales_nightly", token=token)[0] == 200, 180, stack)
    run_id = f"native_{AS_OF}_{secrets.token_hex(3)}"
    status, body = stack.http(
        "POST", "/api/v2/dags/sales_nightly/dagRuns",
        # run_after = when the scheduler would have run that day: older than the scheduled run that unpausing
        # adds, so ours starts first and the other one is failed while still queued.
        {"dag_run_id": run_id, "logical_date": f"{AS_OF}T00:00:00Z", "run_after": "2026-11-01T02:00:00Z",
         "conf": {}},
        token=token,
    )
    assert status == 200, (status, body)
    status, body = stack.http("PATCH", "/api/v2/dags/sales_nightly", {"is_paused": False}, token=token)
    assert status == 200 and body["is_paused"] is False, (status, body)

    failed_states = {"failed", "up_for_retry", "upstream_failed"}

    def run_succeeded():
        # Unpausing makes the scheduler add the latest scheduled run (catchup=False, max_active_runs=1): it is
        # not ours and would hold the only slot, so mark it failed (that also stops its tasks).
        _, runs = stack.http("GET", "/api/v2/dags/sales_nightly/dagRuns", token=token)
        for r in runs.get("dag_runs", []) if isinstance(runs, dict) else []:
            if r["dag_run_id"] != run_id and r["state"] in ("queued", "running"):
                stack.http("PATCH", f"/api/v2/dags/sales_nightly/dagRuns/{r['dag_run_id']}", {"state": "failed"},
                           token=token)
                stack.other_runs.add(r["dag_run_id"])
        _, tis = stack.http("GET", f"/api/v2/dags/sales_nightly/dagRuns/{run_id}/taskInstances", token=token)
        states = {ti["task_id"]: ti["state"] for ti in tis.get("task_instances", [])} if isinstance(tis, dict) else {}
        bad = {k: v for k, v in states.items() if v in failed_states}
        if bad:
            pytest.fail(f"task(s) failed: {bad}\n{stack.service_logs()}\n{stack.task_logs(lines=150, only=set(bad))}"
                        f"\ntask(s) failed: {bad}")
        _, run = stack.http("GET", f"/api/v2/dags/sales_nightly/dagRuns/{run_id}", token=token)
        if run.get("state") == "failed":
            pytest.fail(f"dag run failed: {states}\n{stack.task_logs()}\n{stack.service_logs()}")
        return True if run.get("state") == "success" else states

    _wait(f"dag run {run_id} to succeed", run_succeeded, RUN_TIMEOUT, stack, interval=2)
    stack.timings["dag_run"] = round(time.monotonic() - t, 1)

    status, tis = stack.http("GET", f"/api/v2/dags/sales_nightly/dagRuns/{run_id}/taskInstances", token=token)
    assert {ti["task_id"] for ti in tis["task_instances"]} == {
        "extract", "validate", "dbt_build", "forecast.plan", "forecast.chunk", "forecast.store", "forecast.projection",
        "forecast.marts", "publish"}
    assert {ti["state"] for ti in tis["task_instances"]} == {"success"}
    chunks = [ti for ti in tis["task_instances"] if ti["task_id"] == "forecast.chunk"]
    assert len(chunks) >= 2, chunks  # mapped: one task per region (and one for company and segments)

    # The forecast task ran its process pool under the task runner (workers must not re-run bin/airflow).
    forecast_log = stack.task_logs(lines=100_000, only={"forecast.chunk"})
    assert "process pool broke" not in forecast_log, forecast_log[-5000:]

    import duckdb

    warehouse = Path(stack.env["SALESOS_WAREHOUSE"])
    assert warehouse.exists()
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        opportunities = con.execute("select count(*) from marts.fct_opportunities").fetchall()[0][0]
    finally:
        con.close()
    assert opportunities > 0
    stack.timings["total"] = round(time.monotonic() - t0, 1)
    record_property("native_services_timings", json.dumps(stack.timings))
