"""Great Expectations gates: raw exports before the build, forecast tables before publishing.

Suites are JSON files in `expectations/`. GX runs on pandas DataFrames read with DuckDB, never through
SQLAlchemy (on DuckDB 2.0 that path fails every expectation). Findings point back to the export file
and its data row number, so a person can open the file and see the value.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from salesos.contract import EXPORTS, export_by_table
from salesos.settings import PROJECT_ROOT, Settings
from salesos.validate.chunked import run_chunked
from salesos.validate.frames import (
    SAMPLE_ROWS,
    batch_definition,
    finding_column,
    gx_context,
    gx_suite,
    raw_frame,
    validate_frame,
)
from salesos.warehouse.duckdb_limits import apply_memory_limit

log = logging.getLogger(__name__)

EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
RAW_SUITES = (
    "raw_opportunities",
    "raw_opportunity_histories",
    "raw_opportunity_stages",
    "raw_accounts",
    "raw_users",
    "raw_user_roles",
    "raw_leads",
    "raw_tasks",
    "raw_events",
    "raw_quotas",
    "raw_fx_rates",
    "raw_user_assignments",
    "raw_contacts",
    "raw_products",
    "raw_opportunity_line_items",
)


@dataclass
class Finding:
    suite: str
    file: str
    expectation: str
    column: str
    severity: str
    unexpected_count: int
    element_count: int
    sample_rows: list[int] = field(default_factory=list)
    sample_values: list[Any] = field(default_factory=list)
    observed: Any = None
    expected: str = ""
    why: str = ""
    detail: str = ""  # a run-level check's own sentence (it is not a GX expectation on a column)

    def message(self) -> str:
        if self.detail:
            return f"{self.file}: {self.detail}"
        why = f" ({self.why})" if self.why else ""
        if not self.column:
            return f"{self.file}: {self.expectation} {self.expected} failed: observed {self.observed}{why}"
        if self.element_count < 0:  # an aggregate of a column (its max, its mean), not row by row
            return (
                f"{self.file}: field {self.column!r} fails {self.expectation} {self.expected}: "
                f"observed {self.observed}{why}"
            )
        rows = ", ".join(str(r) for r in self.sample_rows)
        values = ", ".join(repr(v) for v in self.sample_values)
        return (
            f"{self.file}: field {self.column!r} fails {self.expectation} in {self.unexpected_count} of "
            f"{self.element_count} rows (data rows {rows}; values {values}){why}"
        )


@dataclass
class ValidationReport:
    suites: list[str] = field(default_factory=list)
    expectations: int = 0
    failures: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    data_docs: str | None = None

    @property
    def success(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "suites": self.suites,
            "expectations": self.expectations,
            "failures": [asdict(f) | {"message": f.message()} for f in self.failures],
            "warnings": [asdict(f) | {"message": f.message()} for f in self.warnings],
            "data_docs": self.data_docs,
        }


class ValidationFailed(RuntimeError):
    """A `fail` expectation did not hold; nothing is published."""

    def __init__(self, report: ValidationReport):
        self.report = report
        lines = "\n".join(f"  - {f.message()}" for f in report.failures)
        docs = f"\nData Docs: {report.data_docs}" if report.data_docs else ""
        super().__init__(f"{len(report.failures)} failing check(s):\n{lines}{docs}")


def load_suite(name: str) -> dict[str, Any]:
    return json.loads((EXPECTATIONS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def _has_loads(con: duckdb.DuckDBPyConnection, raw_schema: str) -> bool:
    """Whether the warehouse has a load audit yet (a new warehouse has none before its first load)."""
    return bool(con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = '_loads'",
        [raw_schema],
    ).fetchall()[0][0])


def previous_row_counts(con: duckdb.DuckDBPyConnection, run_id: str, raw_schema: str = "raw") -> dict[str, int]:
    """Rows loaded per table by the latest earlier run recorded in `raw._loads`."""
    if not _has_loads(con, raw_schema):
        return {}
    rows = con.execute(
        f"""select table_name, row_count from (
                select table_name, row_count,
                       row_number() over (partition by table_name order by loaded_at desc) as rn
                from {raw_schema}._loads where run_id <> ?) where rn = 1""",
        [run_id],
    ).fetchall()
    return {t: int(n) for t, n in rows}


def last_published_loads(con: duckdb.DuckDBPyConnection, raw_schema: str = "raw") -> tuple[str | None, dict[str, int]]:
    """The run that loaded this warehouse last and the rows it loaded per table (from `raw._loads`).

    Why: read on the build copy before this run's load, it is the last good (published) run, whatever
    its id. After the load it is gone if this run re-uses that id (a re-run of the same as-of date
    replaces its own audit rows), so the extract step reads it first and passes it on.
    """
    if not _has_loads(con, raw_schema):
        return None, {}
    latest = con.execute(f"select run_id from {raw_schema}._loads order by loaded_at desc limit 1").fetchall()
    if not latest:
        return None, {}
    run_id = latest[0][0]
    rows = con.execute(
        f"select table_name, sum(row_count) from {raw_schema}._loads where run_id = ? group by 1", [run_id]
    ).fetchall()
    return run_id, {t: int(n) for t, n in rows}


def _tables_loaded(con: duckdb.DuckDBPyConnection, run_id: str, raw_schema: str = "raw") -> set[str]:
    """The raw tables this run loaded a file into, from its own rows in `raw._loads`."""
    if not _has_loads(con, raw_schema):
        return set()
    rows = con.execute(f"select table_name from {raw_schema}._loads where run_id = ?", [run_id]).fetchall()
    return {t for (t,) in rows}


def check_no_export_vanished(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    previous_run: str | None,
    previous: dict[str, int],
    settings: Any,
    raw_schema: str = "raw",
) -> None:
    """Stop the run when an export that had rows in the last published run was not loaded by this one.

    An absent (or empty) optional file loads as an empty raw table, so without this the run would
    publish empty models where yesterday's had rows; "loaded" is this run's own rows in `raw._loads`
    (an incremental night keeps the raw tables, so their presence says nothing). A file listed in the
    setting `exports_optional_for_good` may be gone.
    """
    from salesos.extract.landing import ExportError

    loaded = _tables_loaded(con, run_id, raw_schema)
    gone_for_good = {str(n).lower() for n in settings.exports_optional_for_good}
    vanished = []
    for export in EXPORTS:
        rows = previous.get(export.table, 0)
        if rows > 0 and export.table not in loaded and export.filename.lower() not in gone_for_good:
            vanished.append(f"{export.filename} (the last published run, {previous_run}, loaded {rows:,} rows from it)")
    if vanished:
        raise ExportError(
            f"export file(s) missing or empty in this run's exports: {'; '.join(vanished)}. "
            "Publishing would leave their models empty: restore the file(s), or list them in the setting "
            "exports_optional_for_good if they are gone for good"
        )


def run_params(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    settings: Any,
    as_of: date,
    previous: dict[str, int] | None = None,
    allow_exports_after_as_of: bool = False,
) -> dict[str, Any]:
    """Parameters of the suites for one run: allowed values and limits from settings, floors from history.

    A required export needs at least one row; any export may shrink by at most `max_export_shrink`
    against the previous run (`previous`: rows per table of the last published run, as the extract step
    read them before its load; default: the latest earlier run in `raw._loads`), so a half-empty export
    can never wipe out the pipeline. The as-of date and its tolerance feed the run-level as-of checks.
    """
    if previous is None:
        previous = previous_row_counts(con, run_id)
    # an export declared gone for good and absent tonight has no floor (when it is there, it has one)
    gone = {str(n).lower() for n in settings.exports_optional_for_good} - {
        export_by_table(t).filename.lower() for t in _tables_loaded(con, run_id)
    }
    min_rows = {
        e.table: max(
            1 if e.required else 0,
            0 if e.filename.lower() in gone else math.ceil(previous.get(e.table, 0) * (1 - settings.max_export_shrink)),
        )
        for e in EXPORTS
    }
    freshness = datetime.combine(as_of - timedelta(days=settings.max_export_age_days), datetime.min.time())
    return {
        "stage_order": ranked_stage_names(con, settings),
        "forecast_categories": list(settings.forecast_categories),
        "min_rows": min_rows,
        "freshness_min": freshness.isoformat(sep=" "),
        "as_of": as_of.isoformat(),
        "max_export_days_after_as_of": int(settings.max_export_days_after_as_of),
        "allow_exports_after_as_of": bool(allow_exports_after_as_of),
    }


# The run-level checks of the as-of date against the opportunities export (`as_of_findings`).
AS_OF_CHECKS = 2


def as_of_findings(con: duckdb.DuckDBPyConnection, params: dict[str, Any], raw_schema: str = "raw") -> list[Finding]:
    """Check the run's as-of date against the opportunities export.

    Why: every mart is cut at the as-of date, so an as-of before the first opportunity publishes empty
    marts, and exports modified long after it publish deals as they stand today (won, lost, moved)
    under the earlier date. The first fails; the second fails unless the run was given
    `allow_exports_after_as_of` (then it is a warning in the summary).
    """
    as_of = date.fromisoformat(params["as_of"])
    days = int(params["max_export_days_after_as_of"])
    file = export_by_table("opportunities").filename
    created = "try_cast(created_date as timestamp)"
    modified = f"coalesce(try_cast(last_modified_date as timestamp), {created})"
    table = f"{raw_schema}.opportunities"
    n, before = con.execute(
        f"select count(*), count(*) filter (where {created}::date <= ?) from {table}", [as_of]
    ).fetchall()[0]
    if not n:
        return []  # the row count check fails the empty export
    # the earliest and the newest record, the first data row among equals
    first, first_row = con.execute(
        f"select {created}, _row_number from {table} order by {created} nulls last, _row_number limit 1"
    ).fetchall()[0]
    newest, newest_row, newest_is_modified = con.execute(
        f"select {modified}, _row_number, last_modified_date is not null from {table} "
        f"order by {modified} desc nulls last, _row_number limit 1"
    ).fetchall()[0]
    findings: list[Finding] = []
    if first is not None and not before:
        findings.append(
            Finding(
                suite="run", file=file, expectation="as_of_not_before_the_exports", column="created_date",
                severity="fail", unexpected_count=int(n), element_count=int(n), sample_rows=[int(first_row)],
                sample_values=[str(first)], observed=first.date().isoformat(), expected=f"<= {as_of}",
                detail=(
                    f"no opportunity was created on or before the as-of date {as_of}: the earliest CreatedDate "
                    f"is {first.date()} (data row {first_row}), so every mart would be empty; check --as-of"
                ),
            )
        )
    limit = as_of + timedelta(days=days)
    if newest is not None and newest.date() > limit:
        field_name = "LastModifiedDate" if newest_is_modified else "CreatedDate"
        allowed = bool(params.get("allow_exports_after_as_of"))
        outcome = (
            f"published anyway (--allow-exports-after-as-of): deals show as they stood when exported, those "
            f"won, lost or changed after {as_of} included"
            if allowed
            else f"deals won, lost or changed after {as_of} would be published as of {as_of}; pass "
            "--allow-exports-after-as-of (DAG param allow_exports_after_as_of) to publish them anyway, or run "
            "on the exports of the as-of date"
        )
        findings.append(
            Finding(
                suite="run", file=file, expectation="exports_not_after_as_of",
                column="last_modified_date" if newest_is_modified else "created_date",
                severity="warn" if allowed else "fail", unexpected_count=1, element_count=int(n),
                sample_rows=[int(newest_row)], sample_values=[str(newest)], observed=str(newest),
                expected=f"<= {limit}",
                detail=(
                    f"the newest {field_name} is {newest} (data row {newest_row}), {(newest.date() - as_of).days} "
                    f"days after the as-of date {as_of} (setting max_export_days_after_as_of: {days}): {outcome}"
                ),
            )
        )
    return findings


def ranked_stage_names(con: duckdb.DuckDBPyConnection, settings: Any, raw_schema: str = "raw") -> list[str]:
    """Stage names with a funnel rank (as int_stages__resolved ranks them) plus the settings' closed stages.

    The names of OpportunityStage.csv when it has any SortOrder, else the settings' stage_order: a stage
    outside these sorts last in funnels (a warning of the suites).
    """
    exported: list[str] = []
    with contextlib.suppress(duckdb.Error):  # a warehouse loaded before the export was in the contract
        exported = [
            r[0]
            for r in con.execute(
                f"""select distinct nullif(trim(n), '') from {raw_schema}.opportunity_stages,
                        unnest([master_label, api_name]) as t(n)
                    where nullif(trim(n), '') is not null
                      and exists (select 1 from {raw_schema}.opportunity_stages
                                  where nullif(trim(sort_order), '') is not null)
                    order by 1"""
            ).fetchall()
        ]
    ranked = exported or list(settings.stage_order)
    closed = [s for s in [*settings.closed_won_stages, *settings.closed_lost_stages] if s not in ranked]
    return ranked + closed


def _mark_export(con: duckdb.DuckDBPyConnection, table: str, result: Any) -> None:
    """Name the export a raw table was last loaded from in the result's batch markers (shown in Data Docs)."""
    rows = con.execute(
        "select source_file, sha256 from raw._loads where table_name = ? order by loaded_at desc limit 1", [table]
    ).fetchall()
    markers = result.meta.setdefault("batch_markers", {}) if isinstance(result.meta, dict) else None
    if rows and isinstance(markers, dict):
        markers["export_file"], markers["export_sha256"] = rows[0]


def _file_of(suite: dict[str, Any]) -> str:
    return export_by_table(suite["table"]).filename if suite["table"] != "fct_forecasts" else "fct_forecasts"


def _findings(
    suite: dict[str, Any],
    result: Any,
    n_rows: int,
    row_of: Any,
    value_of: Any,
) -> list[Finding]:
    """The failed expectations of one suite's result, each pointing at export file, data rows and field.

    `row_of(i)` / `value_of(i, column)` give the data row number and the raw value at frame position `i`
    (None when the frame has no such column), so whole frames and chunked runs report alike.
    """
    file = _file_of(suite)
    findings: list[Finding] = []
    for r in result.results:
        if r.success:
            continue
        cfg = r.expectation_config
        kwargs = cfg.kwargs
        column = finding_column(cfg)
        idx = list(r.result.get("partial_unexpected_index_list") or [])[:SAMPLE_ROWS]
        positions = [i for i in idx if isinstance(i, int)]
        rows = [row_of(i) for i in positions] if row_of(None) else idx
        base = column.split("__")[0] if column else column
        values = [value_of(i, base) for i in positions] if value_of(None, base) else []
        if r.exception_info and r.exception_info.get("raised_exception"):
            raise RuntimeError(f"expectation {cfg.type} on {file} raised: {r.exception_info.get('exception_message')}")
        findings.append(
            Finding(
                suite=suite["name"],
                file=file,
                expectation=cfg.type,
                column=base,
                severity=(cfg.meta or {}).get("severity", "fail"),
                unexpected_count=int(r.result.get("unexpected_count") or 0),
                element_count=int(r.result.get("element_count") or n_rows) if "unexpected_count" in r.result else -1,
                sample_rows=rows,
                sample_values=[None if pd.isna(v) else str(v) for v in values],
                observed=r.result.get("observed_value"),
                expected=", ".join(f"{k}={v}" for k, v in kwargs.items() if k in ("min_value", "max_value")),
                why=(cfg.meta or {}).get("why", ""),
            )
        )
    return findings


def run_suite(
    suite: dict[str, Any],
    df: pd.DataFrame,
    context: Any = None,
    params: dict[str, Any] | None = None,
    results: list | None = None,
) -> tuple[int, list[Finding]]:
    """Validate one DataFrame; return the number of expectations and the findings that failed."""
    context = context or gx_context()
    result = validate_frame(batch_definition(context, suite["name"]), gx_suite(suite, params), df)
    if results is not None:
        results.append(result)

    def row_of(i: int | None) -> int | bool:
        return "_row_number" in df if i is None else int(df["_row_number"].iloc[i])

    def value_of(i: int | None, column: str) -> Any:
        return column in df if i is None else df[column].iloc[i]

    return len(suite["expectations"]), _findings(suite, result, len(df), row_of, value_of)


def run_suite_chunked(
    con: duckdb.DuckDBPyConnection,
    suite: dict[str, Any],
    chunk_rows: int,
    context: Any = None,
    params: dict[str, Any] | None = None,
    results: list | None = None,
    raw_schema: str = "raw",
) -> tuple[int, list[Finding]]:
    """Validate one raw table in slices of at most `chunk_rows` rows; the same result as `run_suite` on it whole.

    Why: a whole table as a pandas frame (plus GX's copies) needs gigabytes at scale M. Row-by-row
    expectations (`CHUNKABLE`) run on each slice and their counts, samples and `mostly` thresholds are
    combined over the whole table by the expectation's own GX code; the others (row counts, max, compound
    uniqueness) run once on a frame of only the columns they need.
    """
    context = context or gx_context()
    result, positions = run_chunked(con, suite, chunk_rows, context, params, raw_schema)
    if results is not None:
        results.append(result)
    return len(suite["expectations"]), _findings(suite, result, positions.n_rows, positions.row_of, positions.value_of)


def duckdb_memory_limit(con: duckdb.DuckDBPyConnection) -> str:
    """Cap DuckDB's memory on this connection (it spills to disk beyond it), as dbt's profile does."""
    return apply_memory_limit(con)


def validate_raw(
    con: duckdb.DuckDBPyConnection,
    params: dict[str, Any],
    suites: tuple[str, ...] = RAW_SUITES,
    docs_dir: Path | None = None,
    run_name: str | None = None,
    chunk_rows: int = Settings.validate_chunk_rows,
) -> ValidationReport:
    """Run every raw-export suite; raise ValidationFailed when a `fail` check does not hold.

    With `docs_dir`, GX Data Docs of every suite's result are written there first (offline-ready), so a
    failed run has its pages too. A table of more than `chunk_rows` rows (the setting `validate_chunk_rows`)
    is validated slice by slice, with the same findings, so memory stays bounded at any scale.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    duckdb_memory_limit(con)
    report = ValidationReport()
    context = gx_context()
    results: list = []
    for name in suites:
        suite = load_suite(name)
        rows = con.execute(f'select count(*) from raw."{suite["table"]}"').fetchall()[0][0]
        if rows > chunk_rows:
            n, findings = run_suite_chunked(con, suite, chunk_rows, context, params, results)
        else:
            n, findings = run_suite(suite, raw_frame(con, suite["table"]), context, params, results)
        _mark_export(con, suite["table"], results[-1])
        report.suites.append(name)
        report.expectations += n
        for f in findings:
            (report.failures if f.severity == "fail" else report.warnings).append(f)
    if "as_of" in params and "raw_opportunities" in suites:
        report.expectations += AS_OF_CHECKS
        for f in as_of_findings(con, params):
            (report.failures if f.severity == "fail" else report.warnings).append(f)
    for w in report.warnings:
        log.warning("check warning: %s", w.message())
    if docs_dir is not None:
        from salesos.validate.data_docs import build_data_docs

        report.data_docs = str(build_data_docs(results, docs_dir, run_name=run_name))
    if not report.success:
        raise ValidationFailed(report)
    return report


def validate_forecasts(df: pd.DataFrame) -> ValidationReport:
    """Check the forecast rows of this run before they are published."""
    report = ValidationReport()
    suite = load_suite("forecasts")
    n, findings = run_suite(suite, df.reset_index(drop=True))
    report.suites.append(suite["name"])
    report.expectations += n
    for f in findings:
        (report.failures if f.severity == "fail" else report.warnings).append(f)
    if not report.success:
        raise ValidationFailed(report)
    return report


def write_report(report: ValidationReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2, default=str), encoding="utf-8")
