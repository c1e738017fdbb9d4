"""Great Expectations gates: raw exports before the build, forecast tables before publishing.

Suites are JSON files in `expectations/`. GX runs on pandas DataFrames read with DuckDB, never through
SQLAlchemy (on DuckDB 2.0 that path fails every expectation). Findings point back to the export file
and its data row number, so a person can open the file and see the value.
"""

from __future__ import annotations

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
from salesos.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
RAW_SUITES = (
    "raw_opportunities",
    "raw_opportunity_histories",
    "raw_accounts",
    "raw_users",
    "raw_user_roles",
    "raw_leads",
    "raw_tasks",
    "raw_events",
    "raw_quotas",
    "raw_fx_rates",
)
SAMPLE_ROWS = 5

# Which raw table a reference column points at.
REFERENCES = {
    ("opportunities", "owner_id"): "users",
    ("opportunities", "account_id"): "accounts",
    ("users", "manager_id"): "users",
    ("opportunity_histories", "opportunity_id"): "opportunities",
    ("user_roles", "parent_role_id"): "user_roles",
    ("leads", "owner_id"): "users",
    ("leads", "converted_opportunity_id"): "opportunities",
    ("tasks", "owner_id"): "users",
    ("events", "owner_id"): "users",
}


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

    def message(self) -> str:
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


def _typed_expr(column: str, type_: str) -> str:
    col = f'"{column}"'
    if type_ in ("number",):
        return f"try_cast({col} as double)"
    if type_ == "integer":
        return f"try_cast(try_cast({col} as double) as bigint)"
    if type_ == "date":
        return f"try_cast({col} as date)"
    if type_ == "datetime":
        return f"try_cast({col} as timestamp)"
    if type_ == "boolean":
        v = f"lower(trim({col}))"
        return f"case when {v} in ('true','1','yes') then true when {v} in ('false','0','no') then false end"
    return col


def raw_frame(con: duckdb.DuckDBPyConnection, table: str, raw_schema: str = "raw") -> pd.DataFrame:
    """The raw table plus the derived columns the suites check (`__typed`, `__known`, ...)."""
    export = export_by_table(table)
    extra: list[str] = []
    for f in export.fields:
        if f.type in ("number", "integer", "date", "datetime", "boolean"):
            extra.append(f'{_typed_expr(f.column, f.type)} as "{f.column}__typed"')
    for (tbl, column), target in REFERENCES.items():
        if tbl == table:
            extra.append(
                f'(nullif(trim(t."{column}"), \'\') is null or t."{column}" in '
                f'(select id from {raw_schema}."{target}" where id is not null)) as "{column}__known"'
            )
    if table == "opportunities":
        extra.append("not (lower(is_won) = 'true' and lower(is_closed) = 'false') as closed_flags__consistent")
    if table == "leads":
        extra.append(
            "not (lower(is_converted) = 'true' and nullif(converted_date, '') is null) as conversion__consistent"
        )
    if table == "quotas":
        extra.append("coalesce(day(try_cast(period_start as date)) = 1, false) as period_start__first_of_month")
        extra.append("coalesce(nullif(trim(owner_id), ''), lower(trim(owner_email))) as owner_key")
    sql = f'select t.*{"".join(", " + e for e in extra)} from {raw_schema}."{table}" t order by _row_number'
    return con.execute(sql).df()


def resolve_params(value: Any, params: dict[str, Any]) -> Any:
    """Fill `"${name}"` / `"${name.key}"` placeholders of a suite from the run's parameters."""
    if isinstance(value, dict):
        return {k: resolve_params(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_params(v, params) for v in value]
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        node: Any = params
        for part in value[2:-1].split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(f"suite parameter {value} has no value for this run")
            node = node[part]
        return node
    return value


def previous_row_counts(con: duckdb.DuckDBPyConnection, run_id: str, raw_schema: str = "raw") -> dict[str, int]:
    """Rows loaded per table by the latest earlier run recorded in `raw._loads`."""
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = '_loads'",
        [raw_schema],
    ).fetchall()[0][0]
    if not exists:
        return {}
    rows = con.execute(
        f"""select table_name, row_count from (
                select table_name, row_count,
                       row_number() over (partition by table_name order by loaded_at desc) as rn
                from {raw_schema}._loads where run_id <> ?) where rn = 1""",
        [run_id],
    ).fetchall()
    return {t: int(n) for t, n in rows}


def run_params(con: duckdb.DuckDBPyConnection, run_id: str, settings: Any, as_of: date) -> dict[str, Any]:
    """Parameters of the suites for one run: allowed values and limits from settings, floors from history.

    A required export needs at least one row; any export may shrink by at most `max_export_shrink`
    against the previous run, so a half-empty export can never wipe out the pipeline.
    """
    previous = previous_row_counts(con, run_id)
    min_rows = {
        e.table: max(1 if e.required else 0, math.ceil(previous.get(e.table, 0) * (1 - settings.max_export_shrink)))
        for e in EXPORTS
    }
    freshness = datetime.combine(as_of - timedelta(days=settings.max_export_age_days), datetime.min.time())
    return {
        "stage_order": list(settings.stage_order),
        "forecast_categories": list(settings.forecast_categories),
        "min_rows": min_rows,
        "freshness_min": freshness.isoformat(sep=" "),
    }


def _gx_context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def run_suite(
    suite: dict[str, Any],
    df: pd.DataFrame,
    context: Any = None,
    params: dict[str, Any] | None = None,
    results: list | None = None,
) -> tuple[int, list[Finding]]:
    """Validate one DataFrame; return the number of expectations and the findings that failed."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    context = context or _gx_context()
    name = suite["name"]
    source = context.data_sources.add_pandas(f"{name}_source")
    batch_definition = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("whole")
    gx_suite = gx.ExpectationSuite(name=name)
    for exp in suite["expectations"]:
        kwargs = resolve_params(exp["kwargs"], params or {})
        gx_suite.add_expectation_configuration(
            ExpectationConfiguration(type=exp["type"], kwargs=kwargs, meta=exp.get("meta", {}))
        )
    batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
    result = batch.validate(
        gx_suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_ROWS}
    )
    if results is not None:
        results.append(result)
    file = export_by_table(suite["table"]).filename if suite["table"] != "fct_forecasts" else "fct_forecasts"
    findings: list[Finding] = []
    for r in result.results:
        if r.success:
            continue
        cfg = r.expectation_config
        kwargs = cfg.kwargs
        columns = kwargs.get("column_list") or [kwargs[k] for k in ("column", "column_A", "column_B") if kwargs.get(k)]
        column = ",".join(columns)
        idx = list(r.result.get("partial_unexpected_index_list") or [])[:SAMPLE_ROWS]
        rows = [int(df["_row_number"].iloc[i]) for i in idx if isinstance(i, int)] if "_row_number" in df else idx
        base = column.split("__")[0] if column else column
        values = [df[base].iloc[i] for i in idx if isinstance(i, int)] if base in df else []
        if r.exception_info and r.exception_info.get("raised_exception"):
            raise RuntimeError(f"expectation {cfg.type} on {file} raised: {r.exception_info.get('exception_message')}")
        findings.append(
            Finding(
                suite=name,
                file=file,
                expectation=cfg.type,
                column=base,
                severity=(cfg.meta or {}).get("severity", "fail"),
                unexpected_count=int(r.result.get("unexpected_count") or 0),
                element_count=int(r.result.get("element_count") or len(df)) if "unexpected_count" in r.result else -1,
                sample_rows=rows,
                sample_values=[None if pd.isna(v) else str(v) for v in values],
                observed=r.result.get("observed_value"),
                expected=", ".join(f"{k}={v}" for k, v in kwargs.items() if k in ("min_value", "max_value")),
                why=(cfg.meta or {}).get("why", ""),
            )
        )
    return len(suite["expectations"]), findings


def validate_raw(
    con: duckdb.DuckDBPyConnection,
    params: dict[str, Any],
    suites: tuple[str, ...] = RAW_SUITES,
    docs_dir: Path | None = None,
    run_name: str | None = None,
) -> ValidationReport:
    """Run every raw-export suite; raise ValidationFailed when a `fail` check does not hold.

    With `docs_dir`, GX Data Docs of every suite's result are written there first (offline-ready), so a
    failed run has its pages too.
    """
    report = ValidationReport()
    context = _gx_context()
    results: list = []
    for name in suites:
        suite = load_suite(name)
        df = raw_frame(con, suite["table"])
        n, findings = run_suite(suite, df, context, params, results)
        report.suites.append(name)
        report.expectations += n
        for f in findings:
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
