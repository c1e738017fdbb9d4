"""
### sales_nightly

The nightly sales-operations run: **extract >> validate >> dbt_build >> forecast >> publish**.

| task | what it does |
| --- | --- |
| `extract` | archives the exports (checksummed), starts a build copy of the warehouse, loads raw tables |
| `validate` | Great Expectations suites from `expectations/` on the raw tables; a `fail` check stops the run |
| `dbt_build` | `dbt build` (models and tests) on the build copy, with `as_of` = the run's logical date |
| `forecast.plan` | reads the bookings series of every level from the built marts; one chunk per region |
| `forecast.chunk` | mapped, one task per chunk (never per rep): Prophet with its backtest, a process pool inside |
| `forecast.store` | reconciles the chunks, checks them (Great Expectations), appends to `forecasts.fct_forecasts` |
| `forecast.projection` | this month's and quarter's projection from the open pipeline, `fct_period_projections` |
| `forecast.marts` | one dbt build of the marts that read tonight's forecasts and projections (their accuracy) |
| `publish` | builds the nightly report, then publishes warehouse, BI copy, finance exports and report together |

`forecast.projection` projects this month, this fiscal quarter and the next from won-to-date, the open
pipeline (a deal model trained on the reconstructed daily pipeline) and the deals not yet created, with
80%/95% intervals, at every level; a first night replays the last four fiscal quarters. `forecast.marts`
then rebuilds, in one dbt build, `mart_projection_accuracy` and its summary from the new rows and, on a
night whose forecast stored a new backtest origin (a month closed), the forecast accuracy marts.

The forecast is a task group inside this run, not a DAG of its own: marts and forecasts are published
together in one atomic swap, so finance never reads forecasts made from other marts than the ones beside
them. Its chunks open no warehouse, so they run in parallel on any worker. A series whose complete
months have not changed since an earlier night is taken from `<data>/forecast_cache` instead of fitted
again (same rows); between month ends that is most of them.

The published warehouse changes only in `publish`, which updates the Assets `salesos_marts` and
`salesos_forecasts` for downstream DAGs; a failed run leaves the last good warehouse in place and records
`failure.json` in its run folder and posts it to the webhook of the Airflow connection `salesos_alerts`
when one is configured (its build copy stays for a cleared task to resume; the next run removes
it). Tasks that open the build copy run in the
one-slot pool `duckdb_writer` (DuckDB allows one writing process).
The as-of date is the logical date (the day the data covers): the run for 2026-10-31 starts at 02:00
UTC on 2026-11-01. Configure with the DAG params or the environment variables `SALESOS_EXPORTS`,
`SALESOS_WAREHOUSE`, `SALESOS_DATA_DIR`, `SALESOS_SETTINGS`, `SALESOS_DBT_TARGET`; the param `source` says
whether the landing holds exports or a connector's tables (default: the settings' `source`). A backfill on exports
pulled more than `max_export_days_after_as_of` days after its date fails in `validate` unless the run's
param `allow_exports_after_as_of` is true (then the summary warns). The param `full_refresh` reloads
every raw table, rebuilds every incremental model and fits every forecast series again. A backfill of a date
before the published warehouse's as-of date is refused in `extract` (and again in `publish`) unless the param
`allow_older` is true: it would replace newer numbers with older ones. A failed task's
`failure.json` carries the run's one-line `message`; the traceback is appended to the run folder's `run.log`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, get_current_context, task, task_group

# What downstream DAGs (BI refreshes, finance exports) can schedule on: updated by every publish.
MARTS = Asset(name="salesos_marts", uri="salesos://warehouse/marts")
FORECASTS = Asset(name="salesos_forecasts", uri="salesos://warehouse/forecasts")
# DuckDB allows one writing process: every task that writes the build copy takes the one slot.
WRITER_POOL = "duckdb_writer"


def _on_failure(context: dict) -> None:
    """Record the failure in the run folder and notify; the published warehouse stays as it was."""
    from salesos.orchestrate import notify_failure, record_failure

    notify_failure(context, record_failure(context))


def _ctx():
    """The RunContext of the running task (imports stay inside tasks: nothing heavy at parse time)."""
    from salesos.orchestrate import context_for_run

    context = get_current_context()
    return context_for_run(context["run_id"], context["logical_date"], dict(context["params"]))


@dag(
    dag_id="sales_nightly",
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5), "on_failure_callback": _on_failure},
    params={
        "exports": Param(None, type=["null", "string"], description="landing folder or URL of the exports"),
        "warehouse": Param(None, type=["null", "string"], description="published DuckDB file"),
        "data_dir": Param(None, type=["null", "string"], description="archive/build/runs folder"),
        "settings": Param(None, type=["null", "string"], description="settings YAML"),
        "dbt_target": Param(None, type=["null", "string"], description="dbt target (duckdb, postgres or spark)"),
        "source": Param(
            None, type=["null", "string"],
            description="what `exports` holds: exports, fivetran-salesforce, airbyte-salesforce, fivetran-hubspot "
            "or hubspot-exports "
            "(default: the "
            "settings' source)",
        ),
        "allow_exports_after_as_of": Param(
            False, type="boolean",
            description="publish although the exports were modified long after the as-of date (a backfill on "
            "today's exports); the summary warns",
        ),
        "full_refresh": Param(
            False, type="boolean",
            description="reload every raw table, rebuild every incremental model and fit every forecast series "
            "again (default: only what changed)",
        ),
        "allow_older": Param(
            False, type="boolean",
            description="publish although the published warehouse is as of a later date (a backfill of a past "
            "date then replaces the newer numbers readers see); default: such a run is refused",
        ),
    },
    tags=["salesos"],
)
def sales_nightly() -> None:
    @task(retries=3, retry_delay=timedelta(minutes=2), retry_exponential_backoff=True, pool=WRITER_POOL)
    def extract() -> dict:
        from salesos import pipeline

        return pipeline.extract(_ctx())

    @task(retries=0)
    def validate() -> dict:
        from salesos import pipeline

        return pipeline.validate(_ctx())

    @task(retries=0, pool=WRITER_POOL)
    def dbt_build() -> dict:
        from salesos import pipeline

        return pipeline.build(_ctx())

    @task_group(group_id="forecast")
    def forecast() -> None:
        @task(pool=WRITER_POOL)
        def plan() -> list[str]:
            from salesos import pipeline

            return pipeline.forecast_plan(_ctx())

        @task(map_index_template="{{ chunk_name }}", retries=2)
        def chunk(name: str) -> dict:
            from salesos import pipeline

            get_current_context()["chunk_name"] = name  # type: ignore[typeddict-unknown-key]
            return pipeline.forecast_chunk(_ctx(), name)

        @task(pool=WRITER_POOL)
        def store(done: list[dict]) -> dict:
            from salesos import pipeline

            return pipeline.forecast_store(_ctx())

        @task(pool=WRITER_POOL)
        def projection(stored: dict) -> dict:
            from salesos import pipeline

            ctx = _ctx()
            return pipeline.projection(ctx, full_refresh=ctx.full_refresh)

        @task(pool=WRITER_POOL)
        def marts(stored: dict, projected: dict) -> dict:
            from salesos import pipeline

            return pipeline.forecast_marts(_ctx(), rescore=bool(stored.get("backtest_rows_new")))

        stored = store(chunk.expand(name=plan()))
        marts(stored, projection(stored))

    @task(pool=WRITER_POOL, outlets=[MARTS, FORECASTS])
    def publish() -> dict:
        from salesos import pipeline

        return pipeline.publish(_ctx())

    extract() >> validate() >> dbt_build() >> forecast() >> publish()


sales_nightly()
