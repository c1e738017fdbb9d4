"""What the Airflow tasks need beyond the pipeline steps: a RunContext from the run's own facts.

Configuration comes from the DAG run's params, falling back to environment variables that the
deployment sets once (SALESOS_EXPORTS, SALESOS_WAREHOUSE, SALESOS_DATA_DIR, SALESOS_SETTINGS,
SALESOS_DBT_TARGET). Nothing here runs at DAG import time.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from typing import Any

from salesos.run_context import RunContext
from salesos.settings import PROJECT_ROOT

DEFAULT_EXPORTS = PROJECT_ROOT / "data" / "landing"
DEFAULT_WAREHOUSE = PROJECT_ROOT / "data" / "warehouse" / "salesos.duckdb"


class ConfigError(ValueError):
    """The deployment did not say where the exports or the warehouse are."""


def as_of_from_logical_date(logical_date: datetime | date) -> date:
    """The as-of date of a run is its logical date: a re-run or backfill of a date gives the same rows."""
    return logical_date.date() if isinstance(logical_date, datetime) else logical_date


def context_for_run(run_id: str, logical_date: datetime | date, params: dict[str, Any] | None = None) -> RunContext:
    params = params or {}

    def pick(param: str, env: str, default: Any = None) -> Any:
        value = params.get(param)
        return value if value not in (None, "") else os.environ.get(env, default)

    return RunContext.create(
        as_of=as_of_from_logical_date(logical_date),
        exports=pick("exports", "SALESOS_EXPORTS", str(DEFAULT_EXPORTS)),
        warehouse=pick("warehouse", "SALESOS_WAREHOUSE", str(DEFAULT_WAREHOUSE)),
        data_dir=pick("data_dir", "SALESOS_DATA_DIR"),
        settings_file=pick("settings", "SALESOS_SETTINGS"),
        dbt_target=pick("dbt_target", "SALESOS_DBT_TARGET", "duckdb"),
        run_id=run_id,
        # a run option, never a deployment-wide variable: each backfill says so itself
        allow_exports_after_as_of=bool(params.get("allow_exports_after_as_of") or False),
        # what the landing location holds (exports or a connector's tables); None: the settings' source
        source=params.get("source") or None,
        full_refresh=bool(params.get("full_refresh") or False),
        # a backfill that may publish over a warehouse of a later as-of date says so itself
        allow_older=bool(params.get("allow_older") or False),
    )


def record_failure(context: dict[str, Any]) -> dict[str, Any]:
    """Failure callback: write what failed into the run folder.

    The build copy stays, so a cleared task can pick up where it failed; the next run's extract
    removes stale build copies (a run killed mid-way is recovered the same way).
    """
    import json

    from salesos.failures import RUN_LOG, failure_line, write_traceback

    ti = context.get("task_instance") or context.get("ti")
    ctx = context_for_run(context["run_id"], context["logical_date"], dict(context.get("params") or {}))
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    task = getattr(ti, "task_id", None)
    exc = context.get("exception")
    run_log = ctx.run_dir / RUN_LOG
    failure = {
        "run_id": ctx.run_id,
        "as_of": ctx.as_of.isoformat(),
        "task": task,
        "try_number": getattr(ti, "try_number", None),
        "error": str(exc or ""),
    }
    if isinstance(exc, BaseException):
        # every task before publish works on the build copy only; a failed publish may have swapped already
        failure["message"] = failure_line(exc, run_id=ctx.run_id, step=task,
                                          warehouse_changed=None if task == "publish" else False, run_log=run_log)
        write_traceback(run_log, exc, failure["message"])
        failure["run_log"] = str(run_log)
    elif exc:  # Airflow may hand over only the text of the error
        failure["message"] = (f"salesos run {ctx.run_id} failed in step {task}: {str(exc).splitlines()[0]}; "
                              "the published warehouse was not changed")
    (ctx.run_dir / "failure.json").write_text(json.dumps(failure, indent=2), encoding="utf-8")
    return failure | {"failure_file": str(ctx.run_dir / "failure.json")}


def notify_failure(context: dict[str, Any], failure: dict[str, Any]) -> bool:
    """Send the failure through the Airflow notifier if the deployment configured its connection."""
    from salesos.notify import RunFailureNotifier

    return RunFailureNotifier(failure).send(context)
