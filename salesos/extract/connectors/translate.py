"""Archive a connector's landed tables untouched, then write the export contract's files from them.

Why a translation and not a second loader: the export loader (`salesos.extract.load`) already keeps every
guarantee (typed checks, quarantine with file, row and field, incremental loads, the audit), so a connector
source only has to say which of its rows are the CRM's current records. For each contract table:

- the connector's table is found under its name (`Connector.tables`, renamed by the setting
  `connector_tables`) as `<name>.csv` or `<name>.parquet` in the landing folder, or as a table of the
  schema `connector_schema` of a DuckDB file; it is archived as landed (files byte for byte, database
  tables as Parquet) under `<archive>/landed/`, with checksums in `landed.json`;
- its current rows are kept, as Fivetran's own staging keeps them: `_fivetran_active` true (or empty),
  or the latest `_fivetran_start` of a history-mode table without it;
- the connector's deletion mark (`_fivetran_deleted`) becomes `IsDeleted` (`IsActive` false for users;
  rows of tables with neither are left out and counted), so the models drop them as they drop Salesforce's;
- the Opportunity table gets `SyncedAt` from the connector's sync time, which freshness falls back to
  where the table has no LastModifiedDate;
- a history-mode copy of Opportunity (an `id` and `_fivetran_start`, no `opportunity_id`), landed as
  `opportunity_history` or as `opportunity` itself, gives OpportunityHistory rows where no other history
  is landed (and the current opportunities where no opportunity table is): one per version
  whose stage, amount, close date, probability, forecast category or closed/won flags differ from the
  version before (Salesforce writes a history row on the same changes).

Every translated row carries `landed_table` and `landed_row` (its data row in the landed table), so a row
the loader quarantines names where it came from. A connector table missing a required column, or a
history-mode table without an id column, stops the run with one line naming the table and the column.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import duckdb

from salesos.contract import EXPORTS, ExportFile, header_key
from salesos.extract.connectors.spec import Connector
from salesos.extract.landing import MANIFEST, ArchivedFile, ExportError, is_folder, open_location

log = logging.getLogger(__name__)

LANDED_DIR = "landed"
LANDED_MANIFEST = "landed.json"
# Columns every translated row carries: where in the landed table it came from (the loader keeps them).
PROVENANCE_COLUMNS = ("landed_table", "landed_row")
FILE_SUFFIXES = (".csv", ".parquet")
DATABASE_SUFFIXES = (".duckdb", ".ddb", ".db")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_ROW = "__salesos_landed_row"
_TRUE = "('true', 't', '1', 'yes', 'y')"


class ConnectorTableError(ExportError):
    """A landed table salesos cannot read as the connector's; the message names the table and the column."""


@dataclass(frozen=True)
class LandedTable:
    """One table as the connector landed it, archived."""

    table: str  # the contract table it holds
    name: str  # its landed name
    filename: str  # its file under <archive>/landed/
    source: str  # where it was read from
    sha256: str
    bytes: int


@dataclass
class Translation:
    """What the translation did to one landed table (rows in, rows out, and why any were left out)."""

    landed_rows: int = 0
    # current rows written (the landed rows less earlier versions and the rows left out, see notes)
    written_rows: int = 0
    # OpportunityHistory rows made from the versions of a history-mode Opportunity table
    history_rows: int = 0
    notes: list[str] = field(default_factory=list)
    # a table read only to fill another's columns (HubSpot's deal_company, deal_pipeline): that contract object
    joined_into: str | None = None


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _s(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _truthy(column: str) -> str:
    return f"coalesce(lower(nullif(trim(cast({_q(column)} as varchar)), '')) in {_TRUE}, false)"


def is_database(location: str) -> bool:
    """A DuckDB file (by its suffix) or a PostgreSQL URL, rather than a folder of files."""
    return is_postgres(location) or ("://" not in location and Path(location).suffix.lower() in DATABASE_SUFFIXES)


def is_postgres(location: str) -> bool:
    """A PostgreSQL connection URL (`postgresql://user@host:5432/db`)."""
    return location.startswith(POSTGRES_SCHEMES)


def _without_password(dsn: str) -> str:
    """The DSN as recorded in the archive: never the password."""
    from psycopg2.extensions import make_dsn, parse_dsn

    params = parse_dsn(dsn)
    params.pop("password", None)
    return make_dsn(**params)


def check_overrides(connector: Connector, overrides: dict[str, str], settings_name: str = "connector_tables") -> None:
    """Every renamed table must be one of the connector's own names (a typo would silently read nothing)."""
    known = set(connector.tables.values())
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ExportError(
            f"setting {settings_name} renames {', '.join(unknown)}, not a {connector.title} table "
            f"(known: {', '.join(sorted(known))})"
        )


def archive_connector(
    connector: Connector,
    location: str | Path,
    archive_dir: Path,
    overrides: dict[str, str] | None = None,
    schema: str | None = None,
    options: dict[str, Any] | None = None,
) -> list[ArchivedFile]:
    """Archive the landed tables untouched and write the contract's files beside them; returns the latter.

    `options` are the settings a connector's translation reads besides the table names (HubSpot's
    `team_regions` and `team_segments`).

    The returned files (and `manifest.json`) are what `salesos.extract.load.load_raw` loads; `landed.json`
    records the landed tables' checksums and what the translation did with each.
    """
    overrides = dict(overrides or {})
    check_overrides(connector, overrides)
    location = str(location)
    tmp_dir = archive_dir.with_name(archive_dir.name + ".partial")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    (tmp_dir / LANDED_DIR).mkdir(parents=True)
    if is_postgres(location):
        landed = _archive_postgres(connector, location, tmp_dir / LANDED_DIR, overrides, schema or "public")
    elif is_database(location):
        landed = _archive_database(connector, location, tmp_dir / LANDED_DIR, overrides, schema or "main")
    else:
        landed = _archive_files(connector, location, tmp_dir / LANDED_DIR, overrides)
    by_table = {t.table: t for t in landed}
    _check_required(connector, location, by_table, overrides)
    con = duckdb.connect()
    try:
        build = connector.build or translate
        translations, archived = build(con, connector, tmp_dir, by_table, options or {})
    finally:
        con.close()
    (tmp_dir / MANIFEST).write_text(json.dumps([asdict(a) for a in archived], indent=2), encoding="utf-8")
    (tmp_dir / LANDED_MANIFEST).write_text(
        json.dumps(
            {
                "connector": connector.name,
                "location": location,
                "tables": [asdict(t) for t in landed],
                "translation": {k: asdict(v) for k, v in translations.items()},
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    shutil.rmtree(archive_dir, ignore_errors=True)
    tmp_dir.rename(archive_dir)
    log.info("archived %d %s table(s) from %s into %s", len(landed), connector.title, location, archive_dir)
    return archived


def read_translations(archive_dir: Path) -> dict[str, Any]:
    """What `archive_connector` recorded for a run (empty for an export-folder run)."""
    path = archive_dir / LANDED_MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _archive_files(connector: Connector, location: str, dest: Path, overrides: dict[str, str]) -> list[LandedTable]:
    fs, root = open_location(location, f"{connector.title} tables: location")
    if not is_folder(fs, root, location, f"{connector.title} tables: location"):
        raise ExportError(f"{connector.title} tables: location not found or not a folder: {location}")
    entries: dict[str, list[str]] = {}
    for entry in sorted(fs.ls(root, detail=False)):
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        suffix = PurePosixPath(name).suffix.lower()
        if suffix in FILE_SUFFIXES and fs.isfile(entry):
            entries.setdefault(PurePosixPath(name).stem.lower(), []).append(entry)
    landed: list[LandedTable] = []
    for table, default in connector.tables.items():
        name = overrides.get(default, default)
        found = entries.get(name.lower(), [])
        if len(found) > 1:
            raise ExportError(
                f"{connector.title} table {name}: {len(found)} files in {location} hold it "
                f"({', '.join(f.rsplit('/', 1)[-1] for f in found)}); keep one"
            )
        if not found:
            continue
        src = found[0]
        filename = src.rsplit("/", 1)[-1]
        digest, size = hashlib.sha256(), 0
        with fs.open(src, "rb") as fin, (dest / filename).open("wb") as fout:
            while chunk := fin.read(1 << 20):
                digest.update(chunk)
                fout.write(chunk)
                size += len(chunk)
        landed.append(LandedTable(table, name, filename, fs.unstrip_protocol(src), digest.hexdigest(), size))
    return landed


def _tables_in_schema(
    connector: Connector, names: list[str], overrides: dict[str, str], schema: str, where: str
) -> list[tuple[str, str]]:
    """(contract table, landed name) of each connector table among a schema's tables, matched case-insensitively."""
    present = {name.lower(): name for name in names}
    if not present:
        raise ExportError(f"{connector.title} tables: schema {schema!r} of {where} has no tables "
                          "(setting connector_schema)")
    return [(table, present[key]) for table, default in connector.tables.items()
            if (key := overrides.get(default, default).lower()) in present]


def _archived(table: str, name: str, path: Path, source: str) -> LandedTable:
    """The record of one table written to the archive at `path` (its checksum and size)."""
    data = path.read_bytes()
    return LandedTable(table, name, path.name, source, hashlib.sha256(data).hexdigest(), len(data))


def _archive_database(
    connector: Connector, location: str, dest: Path, overrides: dict[str, str], schema: str
) -> list[LandedTable]:
    """Each landed table of the schema, written to Parquet in the archive (its columns and types as landed)."""
    if not Path(location).is_file():
        raise ExportError(f"{connector.title} tables: DuckDB file not found: {location}")
    con = duckdb.connect(location, read_only=True)
    try:
        names = [n for (n,) in con.execute(
            "select table_name from information_schema.tables where table_schema = ?", [schema]).fetchall()]
        landed: list[LandedTable] = []
        for table, name in _tables_in_schema(connector, names, overrides, schema, location):
            path = dest / f"{name}.parquet"
            con.execute(f"copy (select * from {_q(schema)}.{_q(name)}) to {_s(str(path))} (format parquet)")
            landed.append(_archived(table, name, path, f"{location}:{schema}.{name}"))
        return landed
    finally:
        con.close()


def _archive_postgres(
    connector: Connector, dsn: str, dest: Path, overrides: dict[str, str], schema: str
) -> list[LandedTable]:
    """Each landed table of the PostgreSQL schema, as PostgreSQL writes it to CSV (every value as its text)."""
    import psycopg2
    from psycopg2 import sql

    where = _without_password(dsn)
    try:
        pg = psycopg2.connect(dsn)
    except psycopg2.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{connector.title} tables: cannot connect to {where}: {first}") from exc
    try:
        pg.set_session(readonly=True)
        with pg.cursor() as cur:
            cur.execute("select table_name from information_schema.tables where table_schema = %s", [schema])
            names = [n for (n,) in cur.fetchall()]
            landed: list[LandedTable] = []
            for table, name in _tables_in_schema(connector, names, overrides, schema, where):
                path = dest / f"{name}.csv"
                query = sql.SQL("copy (select * from {}.{}) to stdout with (format csv, header)").format(
                    sql.Identifier(schema), sql.Identifier(name))
                with path.open("wb") as fh:
                    cur.copy_expert(query.as_string(pg), fh)
                landed.append(_archived(table, name, path, f"{where} {schema}.{name}"))
        return landed
    finally:
        pg.close()


def _check_required(
    connector: Connector, location: str, by_table: dict[str, LandedTable], overrides: dict[str, str]
) -> None:
    where = "table" if is_database(location) else "{name}.csv or {name}.parquet"
    for key in connector.required_tables:
        if key not in by_table:
            name = connector.landed_name(key, overrides)
            raise ExportError(
                f"{connector.title} table {name} is not in {location} (looked for {where.format(name=name)}; "
                "setting connector_tables names a table landed under another name)"
            )
    if connector.build is not None:
        return
    versions = {current for hist, current in connector.versions_of.items() if hist in by_table}
    for e in EXPORTS:
        if e.required and e.table not in by_table and e.table not in versions:
            name = connector.landed_name(e.table, overrides)
            where = "table" if is_database(location) else f"{name}.csv or {name}.parquet"
            raise ExportError(
                f"{connector.title} table {name} (the contract's {e.object_name}) is not in {location} "
                f"(looked for {where}; setting connector_tables names a table landed under another name)"
            )


def _relation(path: Path) -> str:
    if path.suffix.lower() == ".parquet":
        return f"read_parquet({_s(str(path))})"
    # every value as the text it is: the loader parses and checks types against the contract
    return f"read_csv({_s(str(path))}, all_varchar=true, header=true)"


class _Columns:
    """The landed table's columns, found the way the loader matches headers (case, underscores ignored)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.by_key = {header_key(n): n for n in names}

    def find(self, *candidates: str | None) -> str | None:
        for c in candidates:
            if c is not None and header_key(c) in self.by_key:
                return self.by_key[header_key(c)]
        return None


def translate(
    con: duckdb.DuckDBPyConnection, connector: Connector, archive_dir: Path, landed: dict[str, LandedTable],
    options: dict[str, Any] | None = None,
) -> tuple[dict[str, Translation], list[ArchivedFile]]:
    """Write the contract's file of every landed table into `archive_dir` (landed files under `landed/`)."""
    translations: dict[str, Translation] = {}
    archived: list[ArchivedFile] = []
    outputs: dict[str, tuple[str, str, bool]] = {}  # contract table -> (select sql, landed name, is history)
    for export in EXPORTS:
        t = landed.get(export.table)
        if t is None:
            continue
        con.execute(
            f"create or replace view {_q('_landed_' + export.table)} as select *, row_number() over () as {_ROW} "
            f"from {_relation(archive_dir / LANDED_DIR / t.filename)}"
        )
        try:
            names = [d[0] for d in con.execute(f"select * from {_q('_landed_' + export.table)} limit 0").description]
        except duckdb.Error as exc:
            raise ConnectorTableError(
                f"{connector.title} table {t.name} ({t.filename}): cannot be read: {' '.join(str(exc).split())[:200]}"
            ) from exc
        cols = _Columns([n for n in names if n != _ROW])
        history_mode = connector.start_column is not None and cols.find(connector.start_column) is not None
        if history_mode and cols.find("id") is None:
            raise ConnectorTableError(
                f"{connector.title} table {t.name} ({t.filename}): a history-mode table needs an id column "
                f"(the record's Id) and has none; it has {', '.join(cols.names)}"
            )
        info = Translation(landed_rows=_count(con, f"_landed_{export.table}"))
        translations[t.name] = info
        current = connector.versions_of.get(export.table)
        if current is not None and history_mode and cols.find("OpportunityId") is None:
            # a history-mode copy of the current object: its versions are the history
            outputs[export.table] = (_history_sql(connector, t, cols, info, con), t.name, True)
            if current not in landed:
                outputs[current] = (
                    _current_sql(connector, export_for(current), t, cols, info, history_mode), t.name, False
                )
                info.notes.append(f"current {export_for(current).object_name} rows from its active versions")
            continue
        outputs[export.table] = (_current_sql(connector, export, t, cols, info, history_mode), t.name, False)
        history_of = {cur: hist for hist, cur in connector.versions_of.items()}.get(export.table)
        if history_of is not None and history_mode and history_of not in landed:
            # the current table itself in history mode, and no history table: its versions are the history
            outputs[history_of] = (_history_sql(connector, t, cols, info, con), t.name, True)
    for export in EXPORTS:
        if export.table not in outputs:
            continue
        sql, name, is_history = outputs[export.table]
        dest = archive_dir / export.filename
        con.execute(f"copy ({sql}) to {_s(str(dest))} (header, delimiter ',', quote '\"', escape '\"')")
        data = dest.read_bytes()
        written = _count(con, f"({sql})")
        info = translations[name]
        if is_history:
            info.history_rows = written
        else:
            info.written_rows = written
        origin = next(t for t in landed.values() if t.name == name)
        archived.append(
            ArchivedFile(export.filename, export.table, f"{LANDED_DIR}/{origin.filename} ({connector.name})",
                         hashlib.sha256(data).hexdigest(), len(data))
        )
    return translations, archived


def export_for(table: str) -> ExportFile:
    return next(e for e in EXPORTS if e.table == table)


def _count(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    rel = relation if relation.startswith("(") else _q(relation)
    return int(con.execute(f"select count(*) from {rel} as _c").fetchall()[0][0])


def _required_columns(connector: Connector, export: ExportFile, t: LandedTable, cols: _Columns,
                      supplied: set[str]) -> None:
    for f in export.fields:
        if f.required and f.column not in supplied and cols.find(f.api_name, f.column) is None:
            raise ConnectorTableError(
                f"{connector.title} table {t.name} ({t.filename}): required column {f.column} "
                f"({export.object_name}.{f.api_name}) is missing; it has {', '.join(cols.names)}"
            )
    for group in export.one_of:
        if not any(cols.find(c) for c in group):
            raise ConnectorTableError(
                f"{connector.title} table {t.name} ({t.filename}): needs one of the columns {' or '.join(group)}"
            )


def _current_sql(connector: Connector, export: ExportFile, t: LandedTable, cols: _Columns, info: Translation,
                 history_mode: bool) -> str:
    """The landed table's current rows, every column as text, with the connector's marks folded in."""
    view = _q("_landed_" + t.table)
    conditions: list[str] = []
    active = cols.find(connector.active_column) if connector.active_column else None
    start = cols.find(connector.start_column) if connector.start_column else None
    key = cols.find("id")
    qualify = ""
    if active is not None:
        conditions.append(f"coalesce(lower(nullif(trim(cast({_q(active)} as varchar)), '')) in {_TRUE}, "
                          f"nullif(trim(cast({_q(active)} as varchar)), '') is null)")
    elif history_mode and start is not None and key is not None:
        qualify = f" qualify row_number() over (partition by {_q(key)} order by {_q(start)} desc, {_ROW} desc) = 1"
    deleted = cols.find(connector.deleted_column) if connector.deleted_column else None
    replace: dict[str, str] = {}
    added: list[str] = []
    supplied: set[str] = set()
    if deleted is not None:
        is_deleted = cols.find("IsDeleted") if export.field_by_column("is_deleted") else None
        if export.field_by_column("is_deleted") is not None:
            if is_deleted is not None:
                replace[is_deleted] = (
                    f"case when {_truthy(deleted)} then 'true' else cast({_q(is_deleted)} as varchar) end"
                )
            else:
                added.append(f"case when {_truthy(deleted)} then 'true' else 'false' end as \"IsDeleted\"")
        elif export.table == "users":
            is_active = cols.find("IsActive")
            if is_active is not None:
                replace[is_active] = (
                    f"case when {_truthy(deleted)} then 'false' else cast({_q(is_active)} as varchar) end"
                )
            else:
                added.append(f"case when {_truthy(deleted)} then 'false' else 'true' end as \"IsActive\"")
                supplied.add("is_active")
        else:
            conditions.append(f"not {_truthy(deleted)}")
    synced = cols.find(connector.synced_column)
    if export.field_by_column("synced_at") is not None and cols.find("SyncedAt") is None and synced is not None:
        added.append(f"cast({_q(synced)} as varchar) as \"SyncedAt\"")
    _required_columns(connector, export, t, cols, supplied)
    where = f" where {' and '.join(conditions)}" if conditions else ""
    select = [replace.get(c, f"cast({_q(c)} as varchar)") + f" as {_q(c)}" for c in cols.names]
    select += added
    select += [f"{_s(t.name)} as landed_table", f"{_ROW} as landed_row"]
    _record_dropped(info, active, deleted, export, qualify)
    return f"select {', '.join(select)} from {view}{where}{qualify} order by {_ROW}"


def _record_dropped(info: Translation, active: str | None, deleted: str | None, export: ExportFile,
                    qualify: str) -> None:
    """Notes that say which rows the current rows leave out and why (landed_rows - written_rows of them)."""
    if active is not None:
        info.notes.append(f"rows with {active} false left out (earlier versions, records gone from the CRM)")
    elif qualify:
        info.notes.append("earlier versions left out (the latest start of each id kept)")
    if deleted is not None and export.field_by_column("is_deleted") is None and export.table != "users":
        info.notes.append(f"rows with {deleted} true left out ({export.object_name} has no IsDeleted)")


def _history_sql(connector: Connector, t: LandedTable, cols: _Columns, info: Translation,
                 con: duckdb.DuckDBPyConnection) -> str:
    """OpportunityHistory rows from the versions of a history-mode Opportunity table."""
    view = _q("_landed_" + t.table)
    start = cols.find(connector.start_column)
    key = cols.find("id")
    stage = cols.find("StageName")
    if stage is None:
        raise ConnectorTableError(
            f"{connector.title} table {t.name} ({t.filename}): required column stage_name "
            f"(Opportunity.StageName) is missing; it has {', '.join(cols.names)}"
        )
    assert start is not None and key is not None  # a history-mode table with an id, checked by the caller

    def text(*names: str) -> str:
        c = cols.find(*names)
        return f"cast({_q(c)} as varchar)" if c else "null::varchar"

    deleted = cols.find(connector.deleted_column) if connector.deleted_column else None
    is_deleted = text("IsDeleted")
    if deleted is not None:
        is_deleted = f"case when {_truthy(deleted)} then 'true' else {is_deleted} end"
    tracked = {
        "StageName": text("StageName"),
        "Amount": text("Amount"),
        "CloseDate": text("CloseDate"),
        "Probability": text("Probability"),
        "ForecastCategory": text("ForecastCategory", "ForecastCategoryName"),
        "IsClosed": text("IsClosed"),
        "IsWon": text("IsWon"),
    }
    change_key = "concat_ws('|', " + ", ".join(f"coalesce({v}, '\\N')" for v in tracked.values()) + ")"
    versions = _count(con, f"_landed_{t.table}")
    info.notes.append(f"{versions} version(s); one OpportunityHistory row per version that changes "
                      f"{', '.join(tracked)}")
    fields = ", ".join(f"{v} as {_q(k)}" for k, v in tracked.items())
    return (
        f"select \"Id\", \"OpportunityId\", {', '.join(_q(k) for k in tracked)}, \"CreatedDate\", \"IsDeleted\", "
        f"landed_table, landed_row from ("
        f"select cast({_q(key)} as varchar) || '@' || cast({_q(start)} as varchar) as \"Id\", "
        f"cast({_q(key)} as varchar) as \"OpportunityId\", {fields}, cast({_q(start)} as varchar) as \"CreatedDate\", "
        f"{is_deleted} as \"IsDeleted\", {_s(t.name)} as landed_table, {_ROW} as landed_row, "
        f"{change_key} as _history_key, lag({change_key}) over (partition by {_q(key)} order by {_q(start)}, {_ROW}) "
        f"as _history_prev from {view}) as v "
        f"where _history_prev is null or _history_prev <> _history_key order by landed_row"
    )
