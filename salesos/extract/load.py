"""Load archived export files into raw tables; rows that cannot be loaded go to quarantine.

Every export is read as text (encoding and delimiter detected), checked row by row against the
contract, and split in two:

- `raw.<table>`: the rows that load, with typed fields normalised to one canonical text form (dates
  `YYYY-MM-DD`, date-times `YYYY-MM-DD HH:MM:SS` in UTC, numbers without thousands separators,
  booleans `true`/`false`) so the dbt staging models only cast, the same way on every adapter;
- `quarantine.<table>`: the rows that do not, exactly as read, with the rule they broke, the field
  and the value, and their file and row number.

Nothing is dropped: loaded + quarantined = read, for every file. The archive keeps the original bytes.
Each export is a full snapshot of its object, so `raw.<table>` always ends holding exactly the file's
loadable rows: loading the same files twice never duplicates rows. `raw._loads` keeps one audit row per
file and run.

Incremental nights: when the warehouse already holds a raw table of the same columns from an earlier
night and the export has an Id key, only the difference is applied (delete + insert by key): rows new
or changed in content get this run's `_run_id`/`_loaded_at`, unchanged rows keep the ones of the run
that loaded them (their `_row_number` follows the new file), rows gone from the export are deleted. The
content then equals a full load of the same file, and the dbt models rebuild only what this run's
`_run_id` and `raw._changes` (every key inserted, updated or deleted by the latest load) name. A first
load, a changed column list, a keyless export (quotas, fx rates) or `full_refresh` replace the table.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from salesos.contract import EXPORTS, ExportFile, Field, map_headers
from salesos.extract.landing import ArchivedFile, ExportError

log = logging.getLogger(__name__)

RAW_SCHEMA = "raw"
QUARANTINE_SCHEMA = "quarantine"
NON_NEGATIVE = {"amount", "quota_amount", "annual_revenue", "number_of_employees", "duration_in_minutes"}
POSITIVE = {"rate"}
PLAUSIBLE_YEARS = (1990, 2100)
MAX_ABS_NUMBER = "1e15"  # no deal, quota or head count is a quadrillion; beyond it is a broken cell
CHANGES_TABLE = f"{RAW_SCHEMA}._changes"
# Work tables of a load: in memory (temp) for files up to this size, else in this schema of the database.
SCRATCH_SCHEMA = "_load"
SCRATCH_BYTES_ENV = "SALESOS_LOAD_SCRATCH_BYTES"
DEFAULT_SCRATCH_BYTES = 2_000_000_000
# Set to 1 (salesos run --full-refresh does) to reload every raw table and rebuild every dbt model.
FULL_REFRESH_ENV = "SALESOS_FULL_REFRESH"


def scratch_bytes_setting() -> int:
    """Files larger than this (`SALESOS_LOAD_SCRATCH_BYTES`, default 2 GB) load through compressed work tables."""
    value = os.environ.get(SCRATCH_BYTES_ENV, "").strip()
    return int(value) if value else DEFAULT_SCRATCH_BYTES


def full_refresh_requested() -> bool:
    """Whether this process was asked for a full refresh (env SALESOS_FULL_REFRESH, set by the CLI flag)."""
    return os.environ.get(FULL_REFRESH_ENV, "").strip().lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class PlannedLoad:
    export: ExportFile
    path: Path | None
    mapping: dict[str, str]  # file header -> warehouse column
    encoding: str = "utf-8"
    padded: bool = False  # short rows padded with nulls (needs the single-threaded reader)
    delimiter: str = ","


@dataclass
class LoadResult:
    """Rows read, loaded and quarantined per export file, and quarantined rows per rule."""

    read: dict[str, int] = field(default_factory=dict)
    loaded: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    by_rule: dict[str, int] = field(default_factory=dict)
    encodings: dict[str, str] = field(default_factory=dict)
    # Schema drift per file: optional contract columns the file lacks, columns the contract does not name.
    missing_columns: dict[str, list[str]] = field(default_factory=dict)
    extra_columns: dict[str, list[str]] = field(default_factory=dict)
    # How each file was loaded ("full" or "incremental") and what the load changed in raw, per file:
    # {"inserted": n, "updated": n, "deleted": n} (a full load of a table that existed counts every
    # row loaded as inserted and the keys gone as deleted; a first load counts every row as inserted).
    mode: dict[str, str] = field(default_factory=dict)
    changes: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class TableLoad:
    """What loading one file did."""

    loaded: int
    quarantined: int
    mode: str
    inserted: int
    updated: int
    deleted: int


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _read_csv(path: Path, encoding: str, padded: bool = False, delimiter: str = ",") -> str:
    padding = ", null_padding=true, parallel=false" if padded else ""
    return (
        f"read_csv({_sql_str(str(path))}, all_varchar=true, header=true, delim={_sql_str(delimiter)}, "
        # comment='' and skip=0: DuckDB's sniffer otherwise takes '#' as a comment marker and may skip
        # leading lines, silently dropping records; every line of an export is a record or an error.
        f"quote='\"', escape='\"', comment='', skip=0, encoding={_sql_str(encoding)}{padding})"
    )


def sniff_delimiter(path: Path) -> str:
    """The delimiter of the header line: the candidate it contains most often (Excel in Europe writes ';')."""
    with path.open("rb") as fh:
        first = fh.readline().decode("latin-1")
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_headers(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[list[str], str, bool, str]:
    """Header names as DuckDB's CSV reader sees them, the encoding that reads the file, and padding.

    UTF-8 (with or without BOM) first; a file that is not valid UTF-8 is read as Latin-1, the other
    encoding CRM exports are commonly saved in. A file with short rows (a truncated last line) is read
    with null padding, so the short row reaches quarantine instead of failing the whole file.
    """
    errors: list[str] = []
    delimiter = sniff_delimiter(path)
    for encoding in ("utf-8", "latin-1"):
        for padded in (False, True):
            reader = _read_csv(path, encoding, padded, delimiter)
            try:
                rows = con.execute(f"describe select * from {reader}").fetchall()
                # the sniffer only samples the file: make sure every row reads before trusting it
                con.execute(f"select count(*) from {reader}").fetchall()
                return [row[0] for row in rows], encoding, padded, delimiter
            except duckdb.Error as exc:
                errors.append(str(exc).strip().splitlines()[0])
    raise ExportError(f"{path.name}: cannot be read as CSV: {errors[-1]}")


def _head(path: Path, size: int = 4096) -> bytes:
    """The first bytes of a file, without reading the rest (an export can be larger than the memory cap)."""
    with path.open("rb") as fh:
        return fh.read(size)


def plan_loads(con: duckdb.DuckDBPyConnection, archive_dir: Path, files: list[ArchivedFile]) -> list[PlannedLoad]:
    """Check every file's header against the contract before anything is written."""
    by_table = {f.table: f for f in files}
    plans: list[PlannedLoad] = []
    for export in EXPORTS:
        archived = by_table.get(export.table)
        if archived is None:
            plans.append(PlannedLoad(export, None, {}))
            continue
        path = archive_dir / archived.filename
        if archived.bytes == 0 or not _head(path).strip(b"\xef\xbb\xbf \r\n\t"):
            if export.required:
                raise ExportError(f"{archived.filename}: the file is empty (not even a header row)")
            log.warning("%s is empty: treated as absent", archived.filename)
            plans.append(PlannedLoad(export, None, {}))
            continue
        headers, encoding, padded, delimiter = read_headers(con, path)
        try:
            mapping = map_headers(export, headers)
        except ValueError as exc:
            raise ExportError(str(exc)) from exc
        columns = set(mapping.values())
        missing = [f.api_name for f in export.fields if f.required and f.column not in columns]
        if missing:
            raise ExportError(
                f"{archived.filename}: required column(s) missing: {', '.join(missing)} "
                f"(header has: {', '.join(headers)})"
            )
        for group in export.one_of:
            if not columns.intersection(group):
                raise ExportError(f"{archived.filename}: needs one of the columns {' or '.join(group)}")
        plans.append(PlannedLoad(export, path, mapping, encoding, padded, delimiter))
    return plans


def _blank(col: str) -> str:
    return f"nullif(trim({col}), '') is null"


def parse_expr(f: Field, col: str) -> str | None:
    """SQL that parses a text value into its contract type, NULL when it does not parse."""
    v = f"nullif(trim({col}), '')"
    if f.type == "date":
        return (
            f"coalesce(try_strptime({v}, '%Y-%m-%d'), try_strptime({v}, '%m/%d/%Y'), "
            f"try_strptime({v}, '%Y/%m/%d'), timezone('UTC', try_cast({v} as timestamptz)))::date"
        )
    if f.type == "datetime":
        return (
            f"coalesce(timezone('UTC', try_cast({v} as timestamptz)), try_strptime({v}, '%m/%d/%Y %H:%M:%S'), "
            f"try_strptime({v}, '%m/%d/%Y %H:%M'), try_strptime({v}, '%m/%d/%Y %I:%M %p'), "
            f"try_strptime({v}, '%m/%d/%Y'))"
        )
    if f.type in ("number", "integer"):
        # 1,234.50 and 1234.50 are the same number; 1.234,50 (European) too.
        european = f"regexp_matches({v}, '^-?[0-9]{{1,3}}(\\.[0-9]{{3}})*,[0-9]{{1,2}}$')"
        cleaned = (
            f"case when {european} then replace(replace({v}, '.', ''), ',', '.') "
            f"else replace(replace({v}, ',', ''), ' ', '') end"
        )
        number = f"try_cast({cleaned} as double)"
        if f.type == "integer":
            return f"case when {number} = floor({number}) then {number} end"
        return number
    if f.type == "boolean":
        return (
            f"case when lower({v}) in ('true', '1', 'yes', 't', 'y') then true "
            f"when lower({v}) in ('false', '0', 'no', 'f', 'n') then false end"
        )
    return None


def canonical_expr(f: Field, parsed: str) -> str:
    """The canonical text of a parsed value, as stored in raw."""
    if f.type == "date":
        return f"strftime({parsed}, '%Y-%m-%d')"
    if f.type == "datetime":
        return f"strftime({parsed}, '%Y-%m-%d %H:%M:%S')"
    # Out-of-range numbers never reach raw (they are quarantined); the guard keeps the cast itself safe.
    if f.type == "integer":
        return f"case when abs({parsed}) < {MAX_ABS_NUMBER} then cast(cast({parsed} as bigint) as varchar) end"
    if f.type == "number":
        return f"case when abs({parsed}) < {MAX_ABS_NUMBER} then cast(cast({parsed} as decimal(38, 6)) as varchar) end"
    if f.type == "boolean":
        return f"case when {parsed} then 'true' when not {parsed} then 'false' end"
    raise ValueError(f.type)


def parsed_column(column: str) -> str:
    """The name of the column holding `column` parsed into its contract type while a file is checked."""
    return f"_parsed__{column}"


def row_rules(export: ExportFile, present: set[str], parsed_columns: bool = False) -> list[tuple[str, str, str]]:
    """(condition, rule, field column) in the order they are checked; the first that holds is the reason.

    parsed_columns: the conditions read each typed field's value from its `parsed_column` (parsed once
    per row) instead of repeating the parsing expression in every rule.
    """
    rules: list[tuple[str, str, str]] = []
    key = export.field_by_column("id") if export.key else None
    if key is not None and key.column in present:
        rules.append((_blank(quote(key.column)), "missing_id", key.column))
        # _dups holds every occurrence of a repeated key after the first (see _load_one)
        rules.append(("_row_number in (select _row_number from _dups)", "duplicate_id", key.column))
    for f in export.fields:
        if f.column not in present:
            continue
        col = quote(f.column)
        if f.not_null and f.column != "id":
            rules.append((_blank(col), "missing_value", f.column))
        parsed = parse_expr(f, col)
        if parsed is None:
            continue
        if parsed_columns:
            parsed = quote(parsed_column(f.column))
        rules.append((f"not {_blank(col)} and ({parsed}) is null", f"unparseable_{f.type}", f.column))
        if f.type in ("date", "datetime"):
            lo, hi = PLAUSIBLE_YEARS
            rules.append((f"year({parsed}) not between {lo} and {hi}", "implausible_date", f.column))
        if f.type in ("number", "integer"):
            rules.append(
                (f"not isfinite({parsed}) or abs({parsed}) >= {MAX_ABS_NUMBER}", "number_out_of_range", f.column)
            )
        if f.column in NON_NEGATIVE:
            rules.append((f"({parsed}) < 0", "negative_value", f.column))
        if f.column in POSITIVE:
            rules.append((f"({parsed}) <= 0", "non_positive_value", f.column))
    for group in export.one_of:
        cols = [quote(c) for c in group if c in present]
        rules.append((" and ".join(_blank(c) for c in cols), "missing_value", "|".join(group)))
    return rules


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"describe {relation}").fetchall()]


def _raw_table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables "
            "where table_catalog = current_database() and table_schema = ? and table_name = ?",
            [RAW_SCHEMA, table],
        ).fetchall()[0][0]
    )


def _count(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    return int(con.execute(f"select count(*) from {relation}").fetchall()[0][0])


def _load_one(
    con: duckdb.DuckDBPyConnection,
    plan: PlannedLoad,
    run_id: str,
    loaded_at: datetime,
    full_refresh: bool = False,
) -> TableLoad:
    """Load one file; a file bigger than `scratch_bytes_setting()` works in the `_load` schema (see there)."""
    scratch = plan.path is not None and plan.path.stat().st_size > scratch_bytes_setting()
    if scratch:
        con.execute(f"create schema if not exists {SCRATCH_SCHEMA}")
        con.execute(f"set schema = '{SCRATCH_SCHEMA}'")  # the work tables below, unqualified, land there
    try:
        return _load_file(con, plan, run_id, loaded_at, full_refresh, scratch)
    finally:
        if scratch:
            con.execute("set schema = 'main'")


def _load_file(
    con: duckdb.DuckDBPyConnection,
    plan: PlannedLoad,
    run_id: str,
    loaded_at: datetime,
    full_refresh: bool,
    scratch: bool,
) -> TableLoad:
    """Load one file: every row checked on a full load; on an incremental one only rows new or changed.

    A row whose key and fingerprint (`_row_hash`, a hash of the row's text as read) match a raw row of
    the earlier night passed every rule then and passes them now (the rules look at the row alone,
    duplicate keys aside, which are found over the whole file), so only the other rows are checked,
    parsed and compared: the cost of a night follows what changed, not the size of the export.
    """
    # In-memory temp tables spill uncompressed (27 GB for the 10 GB Task.csv of scale L); tables of the
    # database itself are written compressed. Small files stay in memory, where they are fastest.
    work, view = ("table", "view") if scratch else ("temp table", "temp view")
    export = plan.export
    raw_target = f"{RAW_SCHEMA}.{quote(export.table)}"
    q_target = f"{QUARANTINE_SCHEMA}.{quote(export.table)}"
    run_meta = f"{_sql_str(run_id)} as _run_id, {_sql_str(loaded_at.isoformat(sep=' '))}::timestamp as _loaded_at"
    source = _sql_str(plan.path.name) if plan.path else "null::varchar"
    meta_cols = f"{source} as _source_file, _row_number, {run_meta}"
    mapped = dict(plan.mapping)
    present = set(mapped.values())
    all_cols = [c for c in dict.fromkeys([*mapped.values(), *export.columns])]
    select_in = [f"{quote(h)}::varchar as {quote(c)}" for h, c in mapped.items()]
    select_in += [f"null::varchar as {quote(c)}" for c in export.columns if c not in present]
    # The fingerprint of a row as read (before any parsing); rows equal in text have equal hashes.
    row_hash = f"(hash({', '.join(quote(c) for c in all_cols)}) >> 1)::bigint" if all_cols else "0::bigint"
    if plan.path is None:
        con.execute(f"create or replace {work} _file as select {', '.join(select_in)} limit 0")
    else:
        # preserve_insertion_order keeps the file's order, so the rowid gives each record's number
        con.execute(
            f"create or replace {work} _file as select {', '.join(select_in)} "
            f"from {_read_csv(plan.path, plan.encoding, plan.padded, plan.delimiter)}"
        )
    # rowids of a table written in this transaction start at an offset, but are contiguous and in order
    base, last, n = con.execute("select coalesce(min(rowid), 0), max(rowid), count(*) from _file").fetchall()[0]
    if n and last - base + 1 != n:  # never seen; the row numbers would not be the file's lines
        raise RuntimeError(f"{export.filename}: rows read are not contiguous ({n} rows, ids {base}..{last})")
    row_number = f"rowid - {int(base)} + 1"
    con.execute(
        f"create or replace {view} _incoming as select *, {row_number} as _row_number, {row_hash} as _row_hash "
        f"from _file"
    )
    has_key = export.key is not None and "id" in present
    # Repeated keys: every occurrence after the first (a narrow window over the repeated keys only).
    con.execute(f"create or replace {work} _dups (_row_number bigint)")
    if has_key:
        con.execute(
            """insert into _dups select _row_number from (
                select _row_number, row_number() over (partition by trim(id) order by _row_number) as k
                from _incoming
                where trim(id) in (select trim(id) from _file where nullif(trim(id), '') is not null
                                   group by 1 having count(*) > 1))
            where k > 1"""
        )
    existing = _columns(con, raw_target) if _raw_table_exists(con, export.table) else []
    incremental = not full_refresh and plan.path is not None and has_key and existing == _raw_columns(all_cols)
    # _kept: rows of the file equal to a raw row of the earlier night (same key, same fingerprint).
    con.execute(f"create or replace {work} _kept (id varchar, _row_number bigint)")
    if incremental:
        con.execute(
            f"""insert into _kept select i.id, i._row_number from _incoming as i
            semi join {raw_target} as r on r.id = i.id and r._row_hash = i._row_hash
            where i._row_number not in (select _row_number from _dups)"""
        )
    candidates = "_incoming anti join _kept using (_row_number)" if incremental else "_incoming"
    # Each typed field is parsed once per row; the rules and the normalised values read the result.
    typed = {
        c: expr
        for c in all_cols
        if c in present and (f := export.field_by_column(c)) is not None and (expr := parse_expr(f, quote(c)))
    }
    parsing = "".join(f", {expr} as {quote(parsed_column(c))}" for c, expr in typed.items())
    rules = row_rules(export, present, parsed_columns=True)
    reason = "case " + " ".join(f"when {c} then {_sql_str(r)}" for c, r, _ in rules) + " end" if rules else "null"
    fld = "case " + " ".join(f"when {c} then {_sql_str(f)}" for c, _, f in rules) + " end" if rules else "null"
    con.execute(
        f"create or replace {work} _checked as select *, {reason} as _reason, {fld} as _field "
        f"from (select *{parsing} from {candidates})"
    )
    normalised = []
    for c in all_cols:
        f = export.field_by_column(c)
        if f is not None and c in typed:
            normalised.append(f"{canonical_expr(f, quote(parsed_column(c)))} as {quote(c)}")
        elif f is not None and parse_expr(f, quote(c)) is not None:
            normalised.append(f"null::varchar as {quote(c)}")  # a typed field the file does not have
        else:
            normalised.append(quote(c))
    # The checked rows that load, normalised, without the run metadata.
    con.execute(
        f"create or replace {work} _new as select {', '.join(normalised)}, _row_number, _row_hash "
        f"from _checked where _reason is null"
    )
    field_value = (
        "case _field " + " ".join(f"when {_sql_str(c)} then {quote(c)}" for c in all_cols) + " end"
        if all_cols
        else "null"
    )
    con.execute(
        f"create or replace table {q_target} as select {', '.join(quote(c) for c in all_cols)}, "
        f"_reason, _field, {field_value} as _value, {meta_cols} "
        f"from _checked where _reason is not null order by _row_number"
    )
    con.execute("drop table _checked")  # free the memory before the raw table is written
    con.execute(f"create or replace {work} _delta (id varchar, change varchar)")
    cols = ", ".join(quote(c) for c in all_cols)
    if incremental:
        # Checked rows whose content differs from raw (EXCEPT compares whole rows, nulls equal): a row
        # whose text changed but whose normalised values did not (1,500 -> 1500) keeps its run.
        con.execute(
            f"""insert into _delta
            select u.id, case when r.id is null then 'insert' else 'update' end
            from (select id from (select {cols} from _new
                                  except select {cols} from {raw_target} where id in (select id from _new))) as u
            left join {raw_target} as r on u.id = r.id
            union all
            select id, 'delete' from (select id from {raw_target}
                                      except select id from _kept except select id from _new)"""
        )
        con.execute(f"delete from {raw_target} where id in (select id from _delta)")
        con.execute(
            f"insert into {raw_target} select {cols}, {meta_cols}, _row_hash from _new "
            f"where id in (select id from _delta where change <> 'delete') order by _row_number"
        )
        # rows equal in content keep their run but take this file's line and fingerprint
        con.execute(
            f"update {raw_target} as r set _row_number = n._row_number, _row_hash = n._row_hash from _new as n "
            f"where r.id = n.id and (r._row_number <> n._row_number or r._row_hash <> n._row_hash)"
        )
        con.execute(
            f"update {raw_target} as r set _row_number = k._row_number from _kept as k "
            f"where r.id = k.id and r._row_number <> k._row_number"
        )
        if _count(con, raw_target) != _count(con, "_kept") + _count(con, "_new"):
            # cannot happen while raw was written by this loader (keys unique); never keep a wrong table
            log.warning("%s: incremental load did not match the file; reloading it in full", export.filename)
            return _load_file(con, plan, run_id, loaded_at, True, scratch)
    else:
        if existing and export.key is not None and ("id", "VARCHAR") in existing:
            con.execute(
                f"""insert into _delta
                select coalesce(n.id, o.id), case when o.id is null then 'insert' when n.id is null then 'delete'
                                                   else 'update' end
                from (select id from _new where id is not null) as n
                full outer join (select id from {raw_target} where id is not null) as o on n.id = o.id"""
            )
        else:
            old = _count(con, raw_target) if existing else 0
            con.execute(
                "insert into _delta select null, 'insert' from _new union all select null, 'delete' from range(?)",
                [old],
            )
        con.execute(
            f"create or replace table {raw_target} as select {cols}, {meta_cols}, _row_hash "
            f"from _new order by _row_number"
        )
    for temp in ("_new", "_kept", "_dups"):
        con.execute(f"drop table {temp}")
    con.execute("drop view _incoming")
    con.execute("drop table _file")
    if export.key is not None:
        con.execute(
            f"insert into {CHANGES_TABLE} select ?, ?, id, change from _delta where id is not null",
            [run_id, export.table],
        )
    counts = dict(con.execute("select change, count(*) from _delta group by change").fetchall())
    con.execute("drop table _delta")
    return TableLoad(
        loaded=_count(con, raw_target),
        quarantined=_count(con, q_target),
        mode="incremental" if incremental else "full",
        inserted=int(counts.get("insert", 0)),
        updated=int(counts.get("update", 0)),
        deleted=int(counts.get("delete", 0)),
    )


def _raw_columns(all_cols: list[str]) -> list[tuple[str, str]]:
    """The columns (name, type) a raw table written by this loader has, in order."""
    meta = [
        ("_source_file", "VARCHAR"),
        ("_row_number", "BIGINT"),
        ("_run_id", "VARCHAR"),
        ("_loaded_at", "TIMESTAMP"),
        ("_row_hash", "BIGINT"),
    ]
    return [(c, "VARCHAR") for c in all_cols] + meta


def load_raw(
    con: duckdb.DuckDBPyConnection,
    archive_dir: Path,
    files: list[ArchivedFile],
    run_id: str,
    loaded_at: datetime,
    full_refresh: bool | None = None,
) -> LoadResult:
    """Make the raw and quarantine tables hold this run's files, applying only the difference when it can.

    full_refresh=True replaces every table (None: as env SALESOS_FULL_REFRESH says). Every key the load
    inserted, updated or deleted is listed in `raw._changes` (which keeps the latest load only), so the
    dbt models can rebuild just those.
    """
    if full_refresh is None:
        full_refresh = full_refresh_requested()
    con.execute("set TimeZone = 'UTC'")
    plans = plan_loads(con, archive_dir, files)
    sha = {f.table: f for f in files}
    result = LoadResult()
    for schema in (RAW_SCHEMA, QUARANTINE_SCHEMA):
        con.execute(f"create schema if not exists {schema}")
    con.execute(
        f"""create table if not exists {RAW_SCHEMA}._loads (
            run_id varchar, table_name varchar, source_file varchar, sha256 varchar, bytes bigint,
            row_count bigint, quarantined bigint, encoding varchar, loaded_at timestamp)"""
    )
    audit = (("load_mode", "varchar"), ("inserted", "bigint"), ("updated", "bigint"), ("deleted", "bigint"))
    for column, kind in audit:
        con.execute(f"alter table {RAW_SCHEMA}._loads add column if not exists {column} {kind}")
    con.execute(
        f"create table if not exists {CHANGES_TABLE} (run_id varchar, table_name varchar, id varchar, change varchar)"
    )
    con.execute("begin transaction")
    try:
        con.execute(f"delete from {RAW_SCHEMA}._loads where run_id = ?", [run_id])
        con.execute(f"delete from {CHANGES_TABLE}")
        for plan in plans:
            name = plan.export.filename
            t = _load_one(con, plan, run_id, loaded_at, full_refresh)
            loaded, quarantined = t.loaded, t.quarantined
            result.loaded[name] = loaded
            result.quarantined[name] = quarantined
            result.read[name] = loaded + quarantined
            result.mode[name] = t.mode
            result.changes[name] = {"inserted": t.inserted, "updated": t.updated, "deleted": t.deleted}
            if t.mode == "incremental":
                log.info("%s: +%d ~%d -%d row(s)", name, t.inserted, t.updated, t.deleted)
            if plan.path is None:
                continue
            result.encodings[name] = plan.encoding
            present = set(plan.mapping.values())
            alternatives = {c for g in plan.export.one_of if present.intersection(g) for c in g}
            missing = [f.api_name for f in plan.export.fields if f.column not in present | alternatives]
            extra = [h for h, c in plan.mapping.items() if plan.export.field_by_column(c) is None]
            if missing:
                result.missing_columns[name] = missing
                log.warning("%s: optional column(s) absent, loaded as empty: %s", name, ", ".join(missing))
            if extra:
                result.extra_columns[name] = extra
            f = sha[plan.export.table]
            con.execute(
                f"""insert into {RAW_SCHEMA}._loads (run_id, table_name, source_file, sha256, bytes, row_count,
                    quarantined, encoding, loaded_at, load_mode, inserted, updated, deleted)
                values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    run_id,
                    plan.export.table,
                    f.filename,
                    f.sha256,
                    f.bytes,
                    loaded,
                    quarantined,
                    plan.encoding,
                    loaded_at,
                    t.mode,
                    t.inserted,
                    t.updated,
                    t.deleted,
                ],
            )
            if quarantined:
                q_table = f"{QUARANTINE_SCHEMA}.{quote(plan.export.table)}"
                rules = con.execute(f"select _reason, count(*) from {q_table} group by 1 order by 1").fetchall()
                for rule, n in rules:
                    result.by_rule[f"{name}:{rule}"] = n
                log.warning(
                    "%s: %d row(s) quarantined (%s)", name, quarantined, ", ".join(f"{r}={n}" for r, n in rules)
                )
        con.execute(f"drop schema if exists {SCRATCH_SCHEMA} cascade")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return result
