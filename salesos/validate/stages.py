"""Every stage name in the exports must be known before anything is built: closed/won never comes from a name.

The dbt model `int_stages__resolved` decides, per stage name, whether a deal in it is closed and won, from
the first source that knows the stage: OpportunityStage.csv, the history rows' own IsClosed/IsWon, the
Opportunity rows' IsClosed/IsWon, the settings. A stage none of them knows would be neither open nor
closed, and the pipeline numbers built on it would be wrong without a word, so the validate step stops
the run here instead, naming the stage, the file and what to fix. This module reads the same sources
the same way, on the raw tables (text, as loaded).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from salesos.contract import OPPORTUNITY, OPPORTUNITY_HISTORY, OPPORTUNITY_STAGE
from salesos.settings import DEFAULT_SETTINGS_FILE, Settings, settings_stage_flags
from salesos.validate.gx_checks import SAMPLE_ROWS, Finding, ValidationFailed, ValidationReport

_TRUE = "('true', '1', 'yes', 't', 'y')"
_FALSE = "('false', '0', 'no', 'f', 'n')"


def _bool(column: str) -> str:
    v = f"lower(trim({column}))"
    return f"case when {v} in {_TRUE} then true when {v} in {_FALSE} then false end"


def _name(column: str) -> str:
    return f"nullif(trim({column}), '')"


@dataclass(frozen=True)
class UnknownStage:
    """A stage name of one file that no source knows."""

    file: str
    stage: str
    rows: int
    sample_rows: list[int]
    conflicting: bool  # the file's own IsClosed/IsWon disagree about it

    def text(self) -> str:
        rows = ", ".join(str(r) for r in self.sample_rows)
        why = "; its rows there disagree on IsClosed/IsWon" if self.conflicting else ""
        return f"{self.file}: stage {self.stage!r} ({self.rows} rows, data rows {rows}){why}"


class UnknownStages(ValidationFailed):
    """Stage names that no source knows; the run stops before dbt, the published warehouse stays as it was."""

    def __init__(self, report: ValidationReport, unknown: list[UnknownStage], settings_file: str):
        super().__init__(report)
        self.unknown = unknown
        # one line, whatever the number of stages
        self.args = (
            "unknown stage(s): "
            + "; ".join(u.text() for u in unknown)
            + f". Say whether each is closed and won: add it to closed_won_stages or closed_lost_stages, or to "
            f"stage_order if it is open, in the settings ({settings_file}), or send {OPPORTUNITY_STAGE.filename} "
            "(the stage picklist with IsClosed/IsWon)",
        )

    def __str__(self) -> str:
        return str(self.args[0])


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> set[str]:
    rows = con.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchall()
    return {r[0] for r in rows}


def _flagged(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> tuple[set[str], set[str]]:
    """Stage names whose rows in `table` all agree on IsClosed/IsWon (known), and those whose rows disagree."""
    if not {"stage_name", "is_closed", "is_won"} <= _columns(con, schema, table):
        return set(), set()
    closed, won = _bool("is_closed"), f"({_bool('is_closed')} and coalesce({_bool('is_won')}, false))"
    rows = con.execute(
        f"""select {_name('stage_name')} as stage,
                   bool_and({closed}) = bool_or({closed}) and bool_and({won}) = bool_or({won}) as agrees
            from {schema}."{table}"
            where {_name('stage_name')} is not null and {closed} is not null
            group by 1"""
    ).fetchall()
    return {s for s, agrees in rows if agrees}, {s for s, agrees in rows if not agrees}


def _exported(con: duckdb.DuckDBPyConnection, schema: str) -> set[str]:
    cols = _columns(con, schema, OPPORTUNITY_STAGE.table)
    names = [c for c in ("master_label", "api_name") if c in cols]
    if "is_closed" not in cols or not names:
        return set()
    union = " union ".join(
        f"""select {_name(c)} from {schema}."{OPPORTUNITY_STAGE.table}"
            where {_name(c)} is not null and {_bool('is_closed')} is not null"""
        for c in names
    )
    return {r[0] for r in con.execute(union).fetchall()}


def unknown_stages(con: duckdb.DuckDBPyConnection, settings: Settings, schema: str = "raw") -> list[UnknownStage]:
    """The stage names of live Opportunity and OpportunityHistory rows that no source knows."""
    known = _exported(con, schema) | set(settings_stage_flags(settings))
    conflicting: set[str] = set()
    for export in (OPPORTUNITY_HISTORY, OPPORTUNITY):
        agree, disagree = _flagged(con, schema, export.table)
        known |= agree
        conflicting |= disagree
    found: list[UnknownStage] = []
    for export in (OPPORTUNITY, OPPORTUNITY_HISTORY):
        cols = _columns(con, schema, export.table)
        if "stage_name" not in cols:
            continue
        live = f"coalesce({_bool('is_deleted')}, false) = false" if "is_deleted" in cols else "true"
        rows = con.execute(
            f"""select {_name('stage_name')} as stage, count(*),
                       list(_row_number order by _row_number)[1:{SAMPLE_ROWS}]
                from {schema}."{export.table}"
                where {_name('stage_name')} is not null and {live}
                group by 1 order by min(_row_number)"""
        ).fetchall()
        found += [
            UnknownStage(export.filename, stage, int(n), [int(r) for r in sample], stage in conflicting)
            for stage, n, sample in rows
            if stage not in known
        ]
    return found


def check_stages(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    report: ValidationReport,
    settings_file: str | Path | None = None,
) -> None:
    """Raise UnknownStages (a ValidationFailed: the run stops before dbt) when a stage no source knows is in the data.

    Each unknown stage is added to `report` as a failing finding, so validation.json lists it too.
    """
    unknown = unknown_stages(con, settings)
    if not unknown:
        return
    for u in unknown:
        report.failures.append(
            Finding(
                suite="stages",
                file=u.file,
                expectation="stage_is_known",
                column="stage_name",
                severity="fail",
                unexpected_count=u.rows,
                element_count=u.rows,
                sample_rows=u.sample_rows,
                sample_values=[u.stage],
                why="no source says whether this stage is closed and won",
            )
        )
    raise UnknownStages(report, unknown, str(settings_file or DEFAULT_SETTINGS_FILE))
