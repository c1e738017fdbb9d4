"""Run `dbt build` on a run's warehouse copy and report each model's and test's result.

dbt runs as a subprocess of the same environment so its output streams into the caller's log (the
Airflow task log), its artifacts land in the run's folder, and a crash in dbt cannot take the
caller's process with it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salesos.settings import PROJECT_ROOT, Settings
from salesos.warehouse.dbt_profile import dbt_env

__all__ = ["DBT_PROJECT_DIR", "NIGHTLY_BUILD", "DbtBuildFailed", "DbtResult", "dbt_args", "dbt_env", "dbt_executable",
           "dbt_vars", "run_dbt"]

log = logging.getLogger(__name__)

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


class DbtBuildFailed(RuntimeError):
    """dbt reported an error or a failing test; the run stops before publishing."""


@dataclass
class DbtResult:
    models: int = 0
    tests_passed: int = 0
    tests_warned: int = 0
    failures: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    elapsed_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def dbt_executable() -> str:
    """The dbt script installed beside the running interpreter."""
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def dbt_vars(settings: Settings, as_of: str, run_id: str | None = None, schema_prefix: str = "") -> dict[str, Any]:
    """The team's settings, the as-of date and, when known, the run whose raw load the models catch up with.

    Without run_id the incremental models use the latest load recorded in raw._loads. schema_prefix puts the
    night's schemas apart (the spark target: `n_<run>_raw`, ..., `n_<run>_marts`; salesos.warehouse.spark).
    """
    night = ({"schema_prefix": schema_prefix, "raw_schema": f"{schema_prefix}raw",
              "forecasts_schema": f"{schema_prefix}forecasts"} if schema_prefix else {})
    return {**settings.dbt_vars(), "as_of": as_of} | ({"run_id": run_id} if run_id else {}) | night


# The nightly build: models, seeds and data tests. dbt's unit tests check the SQL against fixed fixtures,
# not the night's data, so they run in CI (tests/test_end_to_end_xs.py) and not on every night.
NIGHTLY_BUILD = ["build", "--exclude-resource-type", "unit_test"]


def dbt_args(command: list[str], full_refresh: bool) -> list[str]:
    """The dbt command, with --full-refresh when asked (rebuilds the incremental models from scratch)."""
    runs_models = bool(command) and command[0] in ("build", "run", "seed")
    return [*command, "--full-refresh"] if full_refresh and runs_models and "--full-refresh" not in command else command


def run_dbt(
    command: list[str],
    *,
    warehouse: Path,
    run_dir: Path,
    settings: Settings,
    as_of: str,
    target: str = "duckdb",
    run_id: str | None = None,
    full_refresh: bool = False,
    on_line: Callable[[str], None] | None = None,
    spark_dir: Path | None = None,
    schema_prefix: str = "",
    in_process: bool = False,
) -> DbtResult:
    """Run a dbt command (e.g. ["build"]) with the run's vars; parse run_results.json.

    The incremental models rebuild only what the latest raw load changed; full_refresh=True rebuilds
    them from scratch (the run's `RunContext.full_refresh`: `salesos run --full-refresh`, the DAG param).
    on_line gets each line dbt prints as it prints it (the progress of `salesos run` counts the nodes done).
    On the spark target, spark_dir holds the local warehouse and metastore and schema_prefix names the night.
    in_process: run dbt in this process (dbt's `dbtRunner`) rather than as a child. The spark target's pipeline
    steps do, so that dbt-spark's session method takes the step's own SparkSession (one JVM and one metastore
    connection for the step, not one per process: salesos.warehouse.spark.local_session).
    """
    target_path = run_dir / "dbt_target"
    log_path = run_dir / "dbt_logs"
    args = [
        dbt_executable(),
        *dbt_args(command, full_refresh),
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target",
        target,
        "--target-path",
        str(target_path),
        "--log-path",
        str(log_path),
        "--vars",
        json.dumps(dbt_vars(settings, as_of, run_id, schema_prefix)),
    ]
    run_dir.mkdir(parents=True, exist_ok=True)
    log.info("running: %s%s", " ".join(args[:2]), " (in this process)" if in_process else "")
    env = dbt_env(warehouse, target, spark_dir)
    code = _run_in_process(args[1:], env, on_line) if in_process else _run_child(args, env, on_line)
    result = parse_run_results(target_path / "run_results.json")
    if code != 0 or result.failures:
        detail = "\n".join(f"  - {f}" for f in result.failures) or f"  dbt exited with code {code}"
        raise DbtBuildFailed(f"dbt {' '.join(command)} failed (logs: {log_path}):\n{detail}")
    return result


def _run_child(args: list[str], env: dict[str, str], on_line: Callable[[str], None] | None) -> int:
    """dbt as a child process; its output streams into the log line by line. Returns its exit code."""
    proc = subprocess.Popen(args, cwd=DBT_PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        log.info("dbt | %s", line.rstrip())
        if on_line is not None:
            on_line(line)
    return proc.wait()


def _run_in_process(args: list[str], env: dict[str, str], on_line: Callable[[str], None] | None) -> int:
    """dbt in this process (dbtRunner), with the environment a child would get; its messages go to the log
    (and on_line) as a child's lines do. Returns 0 on success, 1 on a failed node, 2 when dbt itself failed."""
    from dbt.cli.main import dbtRunner

    from salesos.warehouse.dbt_profile import dbt_environment

    def line(event: Any) -> None:
        if event.info.level in ("info", "warn", "error") and event.info.msg:
            log.info("dbt | %s", event.info.msg)
            if on_line is not None:
                on_line(event.info.msg)

    # --quiet: dbt's own stdout printer stays silent, the callback logs every message once (without colours)
    with dbt_environment(env):
        outcome = dbtRunner(callbacks=[line]).invoke(["--quiet", "--no-use-colors", *args])
    if outcome.exception is not None:
        log.error("dbt failed: %s", outcome.exception)
        return 2
    return 0 if outcome.success else 1


def parse_run_results(path: Path) -> DbtResult:
    """Count models built and tests passed from dbt's run_results.json."""
    if not path.is_file():
        return DbtResult(failures=[f"dbt wrote no run results at {path}"])
    data = json.loads(path.read_text(encoding="utf-8"))
    result = DbtResult(elapsed_seconds=round(float(data.get("elapsed_time", 0.0)), 2))
    statuses: Counter[str] = Counter()
    for r in data.get("results", []):
        uid: str = r["unique_id"]
        status: str = r["status"]
        kind = uid.split(".", 1)[0]
        statuses[f"{kind}:{status}"] += 1
        if kind in ("model", "seed", "snapshot") and status == "success":
            result.models += 1
        elif kind in ("test", "unit_test"):
            if status == "pass":
                result.tests_passed += 1
            elif status == "warn":
                result.tests_warned += 1
        if status in ("error", "fail", "runtime error"):
            msg = (r.get("message") or "").strip().splitlines()
            result.failures.append(f"{uid}: {status}: {msg[0] if msg else ''}")
    result.statuses = dict(statuses)
    return result
