"""The `spark` dbt target: where a night's tables live on Spark, and the pipeline's own Spark session.

dbt-spark builds the models; the pipeline's other steps keep their one implementation and talk to Spark
only at the edges, as the postgres target does:

- **raw load**: the loader still parses, types and quarantines into the DuckDB build copy (the contract's one
  implementation); `copy_to_spark` then writes each raw, quarantine and forecasts table as Parquet under the
  night's folder and registers it as a Spark table of the night's schemas, with the same rows and columns.
- **write-audit-publish**: a night builds into its own schemas (`<night>_raw`, `<night>_staging`, ...,
  `<night>_marts`; `night_prefix`), which no reader sees. Publishing points one view per table of the
  published schemas (`marts`, `forecasts`) at the night's tables (`publish_views`); the nights before stay
  in their schemas for rollback (the last `keep`, `drop_old_nights`). A failed night never reaches the views.
- **reads**: `SparkReader` gives the forecast step the `execute(sql).df()` calls it makes on DuckDB.

One metastore and one warehouse folder serve dbt's session and the pipeline's (`spark_conf`, the same values
`dbt_project/profiles.yml` reads through the SALESOS_SPARK_* variables). A local session keeps the metastore in
embedded Derby, which one process opens at a time: `local_session` stops its JVM on exit, so dbt's process
can open it next. This is connection configuration, one of the layers allowed to read `os.environ`.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

log = logging.getLogger(__name__)

DEFAULT_SCHEMAS = ("raw", "quarantine", "forecasts")
PUBLISHED_SCHEMAS = ("marts", "forecasts")

# The SALESOS_SPARK_* variables dbt_project/profiles.yml reads for its spark target, with the same defaults.
SPARK_ENV_DEFAULTS = {
    "method": ("SALESOS_SPARK_METHOD", "session"),
    "master": ("SALESOS_SPARK_MASTER", "local[2]"),
    "driver_memory": ("SALESOS_SPARK_DRIVER_MEMORY", "2g"),
    "shuffle_partitions": ("SALESOS_SPARK_SHUFFLE_PARTITIONS", "4"),
    "threads": ("SALESOS_SPARK_THREADS", "2"),  # dbt's threads (profiles.yml), not a Spark setting
}
SPARK_DIR_VAR = "SALESOS_SPARK_DIR"


def spark_root(data_dir: Path) -> Path:
    """The folder of the local Spark warehouse and metastore of a salesos data dir."""
    return data_dir / "spark"


def spark_conf(root: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """The Spark configuration both sessions use (dbt's reads the same through profiles.yml)."""
    env = dict(os.environ) if env is None else env
    get = {key: env.get(var, default) for key, (var, default) in SPARK_ENV_DEFAULTS.items()}
    return {
        "spark.master": get["master"],
        "spark.sql.warehouse.dir": f"{root}/warehouse",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={root}/metastore_db;create=true",
        "spark.driver.memory": get["driver_memory"],
        "spark.sql.shuffle.partitions": get["shuffle_partitions"],
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
        # DuckDB's Parquet timestamps (no time zone) are read as Spark timestamps in the UTC session
        "spark.sql.parquet.inferTimestampNTZ.enabled": "false",
        "spark.sql.ansi.enabled": "false",
        # timestamps written as plain int64 microseconds (not INT96), which DuckDB and every Parquet reader take
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        # a table created without a provider is a Spark (Parquet) table, not a Hive text table
        "spark.sql.legacy.createHiveTableByDefault": "false",
        "spark.ui.showConsoleProgress": "false",
        # Derby writes derby.log into the working directory unless told otherwise
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={root}",
    }


# the folder each open local_session serves (by session), for the re-entrant case
_session_roots: dict[int, Path] = {}

_NIGHT = re.compile(r"[^a-z0-9]+")


def night_prefix(run_id: str) -> str:
    """The schema prefix of one night's tables: `n_<run id>_` in the characters a Spark database name takes."""
    return "n_" + _NIGHT.sub("_", run_id.lower()).strip("_") + "_"


@contextmanager
def local_session(root: Path) -> Iterator[Any]:
    """A SparkSession on the night's metastore; its JVM is stopped on exit, freeing the metastore for another
    process.

    Re-entrant: inside an open `local_session` of the same folder it yields that session and leaves it running
    (the outer one stops it), so a pipeline step opens one JVM for all its Spark work, dbt's included when dbt
    runs in the process (salesos.transform.dbt_build.run_dbt(in_process=True): dbt-spark's session method
    takes the active session).
    """
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    active = SparkSession._instantiatedSession if SparkContext._active_spark_context is not None else None
    if active is not None and root.resolve() == _session_roots.get(id(active)):
        yield active
        return
    root.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.appName("salesos").enableHiveSupport()
    for key, value in spark_conf(root).items():
        builder = builder.config(key, value)
    # Python workers (applyInPandas) run the pipeline's own interpreter, with its packages (pyspark reads it
    # from the environment when the context starts: a write, not a read)
    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    # dbt-spark's session method asks the builder for the session before every statement, with the profile's
    # settings: Spark warns each time that an existing session takes only the runtime ones (they are the same)
    log4j = spark._jvm.org.apache.logging.log4j
    log4j.core.config.Configurator.setLevel("org.apache.spark.sql.SparkSession", log4j.Level.ERROR)
    _session_roots[id(spark)] = root.resolve()
    try:
        yield spark
    finally:
        _session_roots.pop(id(spark), None)
        spark.stop()
        gateway = SparkContext._gateway
        if gateway is not None:
            gateway.shutdown()
            proc = getattr(gateway, "proc", None)
            if proc is not None:  # the JVM exits when its stdin closes (pyspark's PythonGatewayServer)
                proc.stdin.close()
                proc.wait(timeout=60)
            SparkContext._gateway = None
            SparkContext._jvm = None


def quote(name: str) -> str:
    """A Spark SQL identifier in backticks."""
    return "`" + name.replace("`", "``") + "`"


def _duckdb_tables(duck: duckdb.DuckDBPyConnection, schemas: Sequence[str]) -> list[tuple[str, str]]:
    return duck.execute(
        "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE' "
        "and table_catalog = current_database() and table_schema in (select unnest(?::varchar[])) order by 1, 2",
        [list(schemas)],
    ).fetchall()


def copy_to_spark(spark: Any, duckdb_file: Path, files_dir: Path, prefix: str,
                  schemas: Sequence[str] = DEFAULT_SCHEMAS) -> dict[str, int]:
    """Write the tables of `schemas` of a DuckDB file as Parquet and register them as `<prefix><schema>.<table>`.

    Returns the rows per table (`schema.table`), counted by Spark on the registered table: the same as DuckDB's
    or the copy fails. A table registered before (a retried step, tonight's forecasts after the build) is
    replaced; its files are written afresh under `files_dir/<schema>/<table>/`.
    """
    import shutil

    from salesos.warehouse.storage import sql_ident, sql_str

    copied: dict[str, int] = {}
    duck = duckdb.connect(str(duckdb_file), read_only=True)
    try:
        duck.execute("set enable_progress_bar = false")
        tables = _duckdb_tables(duck, schemas)
        expected = {}
        for schema, table in tables:
            folder = files_dir / schema / table
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            duck.execute(f"copy {sql_ident(schema)}.{sql_ident(table)} to "
                         f"{sql_str(folder / 'part-0.parquet')} (format parquet, compression zstd)")
            expected[(schema, table)] = duck.execute(
                f"select count(*) from {sql_ident(schema)}.{sql_ident(table)}").fetchall()[0][0]
    finally:
        duck.close()
    for schema in sorted({s for s, _ in tables} | set(schemas)):
        spark.sql(f"create database if not exists {quote(prefix + schema)}")
    for schema, table in tables:
        name = f"{quote(prefix + schema)}.{quote(table)}"
        spark.sql(f"drop table if exists {name}")
        location = (files_dir / schema / table).resolve().as_uri()
        spark.sql(f"create table {name} using parquet location '{location}'")
    # every table's rows as Spark reads them, in one query (one job) rather than one count per table
    counts = _row_counts(spark, [f"{quote(prefix + s)}.{quote(t)}" for s, t in tables])
    for (schema, table), n in zip(tables, counts, strict=True):
        name = f"{prefix}{schema}.{table}"
        if n != expected[(schema, table)]:
            raise RuntimeError(f"Spark table {name} has {n} rows, {duckdb_file} {schema}.{table} has "
                               f"{expected[(schema, table)]}")
        copied[f"{schema}.{table}"] = n
        log.info("registered %s on Spark: %d rows", name, n)
    return copied


def _row_counts(spark: Any, names: Sequence[str]) -> list[int]:
    """The rows of each table, by one `union all` query (Spark answers a bare count from the Parquet footers)."""
    if not names:
        return []
    query = " union all ".join(f"select {i} as i, count(*) as n from {name}" for i, name in enumerate(names))
    found = {row["i"]: row["n"] for row in spark.sql(query).collect()}
    return [found[i] for i in range(len(names))]


def copy_from_spark(spark: Any, duckdb_file: Path, files_dir: Path, prefix: str,
                    schema: str = "marts") -> dict[str, int]:
    """Copy the night's tables of `schema` from Spark into the DuckDB build copy (same schema, same rows).

    What Spark built is then where every DuckDB reader of the night looks: the forecast step, the BI copy, the
    finance exports and the kept versions. Spark writes each table as Parquet; DuckDB replaces its table with
    those rows (a timestamp Spark wrote in UTC becomes DuckDB's plain timestamp, as the models make it);
    a table of `schema` Spark no longer has is dropped.
    """
    import shutil

    from salesos.warehouse.storage import sql_ident, sql_str

    tables = night_tables(spark, prefix, (schema,))
    out = files_dir / "_built" / schema
    shutil.rmtree(out, ignore_errors=True)
    for _, table in tables:
        spark.table(f"{quote(prefix + schema)}.{quote(table)}").write.parquet((out / table).resolve().as_uri())
    copied = {}
    duck = duckdb.connect(str(duckdb_file))
    try:
        from salesos.warehouse.duckdb_limits import apply_memory_limit

        apply_memory_limit(duck)
        duck.execute("set enable_progress_bar = false")
        duck.execute(f"create schema if not exists {sql_ident(schema)}")
        for _, table in tables:
            source = f"read_parquet({sql_str(out / table / '*.parquet')})"
            columns = duck.execute(f"describe select * from {source}").fetchall()
            select = ", ".join(
                f"timezone('UTC', {sql_ident(c[0])}) as {sql_ident(c[0])}" if c[1] == "TIMESTAMP WITH TIME ZONE"
                else sql_ident(c[0]) for c in columns)
            duck.execute(f"create or replace table {sql_ident(schema)}.{sql_ident(table)} as select {select} "
                         f"from {source}")
            copied[f"{schema}.{table}"] = duck.execute(
                f"select count(*) from {sql_ident(schema)}.{sql_ident(table)}").fetchall()[0][0]
        kept = {t for _, t in tables}
        for (name, kind) in duck.execute(
                "select table_name, table_type from information_schema.tables where table_schema = ? "
                "and table_catalog = current_database()", [schema]).fetchall():
            if name not in kept:
                duck.execute(f"drop {'view' if kind == 'VIEW' else 'table'} {sql_ident(schema)}.{sql_ident(name)}")
    finally:
        duck.close()
    shutil.rmtree(out, ignore_errors=True)
    return copied


def night_tables(spark: Any, prefix: str, schemas: Sequence[str] = PUBLISHED_SCHEMAS) -> list[tuple[str, str]]:
    """(schema, table) of the night's tables in the published schemas (its views and test-failure views left out)."""
    found = []
    for schema in schemas:
        database = prefix + schema
        if not spark.catalog.databaseExists(database):
            continue
        for t in spark.catalog.listTables(database):
            if t.tableType != "VIEW":
                found.append((schema, t.name))
    return sorted(found)


def publish_views(spark: Any, prefix: str, schemas: Sequence[str] = PUBLISHED_SCHEMAS) -> list[str]:
    """Point one view per table of the published schemas at the night's table; drop the views of tables gone.

    Each view switches in one statement (`create or replace view`), and readers query the views only.
    """
    tables = night_tables(spark, prefix, schemas)
    if not tables:
        raise RuntimeError(f"no tables in the night's schemas {', '.join(prefix + s for s in schemas)}: "
                           "nothing to publish")
    switched = []
    for schema in schemas:
        spark.sql(f"create database if not exists {quote(schema)}")
    for schema, table in tables:
        spark.sql(f"create or replace view {quote(schema)}.{quote(table)} as "
                  f"select * from {quote(prefix + schema)}.{quote(table)}")
        switched.append(f"{schema}.{table}")
    wanted = set(tables)
    for schema in schemas:
        for t in spark.catalog.listTables(schema):
            if t.tableType == "VIEW" and (schema, t.name) not in wanted and not t.isTemporary:
                spark.sql(f"drop view if exists {quote(schema)}.{quote(t.name)}")
    return switched


def published_prefix(spark: Any, schema: str = "marts") -> str | None:
    """The night the published views point at (from one view's definition), or None before a first publish."""
    if not spark.catalog.databaseExists(schema):
        return None
    for t in spark.catalog.listTables(schema):
        if t.tableType == "VIEW":
            text = spark.sql(f"show create table {quote(schema)}.{quote(t.name)}").collect()[0][0]
            m = re.search(r"from\s+`?(n_[a-z0-9_]+_)" + re.escape(schema) + r"`?\.", text, re.IGNORECASE)
            if m:
                return m.group(1)
    return None


def night_prefixes(spark: Any) -> list[str]:
    """Every night whose schemas are in the metastore (`n_<run>_...`), by name."""
    prefixes = set()
    for db in spark.catalog.listDatabases():
        m = re.match(r"^(n_[a-z0-9_]+_)(raw|quarantine|forecasts|staging|intermediate|marts|test_failures)$", db.name)
        if m:
            prefixes.add(m.group(1))
    return sorted(prefixes)


def drop_night(spark: Any, prefix: str) -> list[str]:
    """Drop every schema of one night (its tables and files)."""
    dropped = []
    for db in spark.catalog.listDatabases():
        if db.name.startswith(prefix):
            spark.sql(f"drop database if exists {quote(db.name)} cascade")
            dropped.append(db.name)
    return dropped


class SparkReader:
    """Read-only queries on the Spark warehouse with the calls the forecast step makes on DuckDB.

    `execute(sql).df()` and `close()`, as `salesos.warehouse.postgres.PgReader`; `?` parameters are bound as
    literals (Spark SQL's own markers are named).
    """

    def __init__(self, spark: Any) -> None:
        self._spark = spark
        self._frame: Any = None

    def execute(self, query: str, params: Sequence[Any] | None = None) -> SparkReader:
        if params:
            parts = query.split("?")
            if len(parts) != len(params) + 1:
                raise ValueError(f"{len(params)} parameters for {len(parts) - 1} markers: {query}")
            query = parts[0] + "".join(_literal(p) + rest for p, rest in zip(params, parts[1:], strict=True))
        self._frame = self._spark.sql(query).toPandas()
        return self

    def df(self) -> Any:
        return self._frame

    def close(self) -> None:
        """The session belongs to `local_session`, which stops it."""


def _literal(value: Any) -> str:
    import datetime as dt

    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dt.date):
        return f"date'{value.isoformat()}'"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def views_after_rollback(data_dir: Path, run_id: str) -> list[str] | None:
    """After `salesos rollback` to the version of run `run_id`: point Spark's published views at that night.

    The DuckDB version set is restored first (salesos.publish.versions.rollback); readers of Spark's `marts.*`
    and `forecasts.*` views then see the same night. The kept versions' nights stay in the metastore
    (`drop_old_nights` in the pipeline keeps them), so this is one `publish_views`. Returns the views switched,
    or None when the data dir has no Spark warehouse with published views (a DuckDB or Postgres warehouse).
    Raises when Spark publishes here but the version's night is not in the metastore (a version built on
    another target): the views are left as they were and the error says which night they read.
    """
    root = spark_root(data_dir)
    if not (root / "metastore_db").exists():
        return None
    prefix = night_prefix(run_id)
    with local_session(root) as spark:
        current = published_prefix(spark)
        if current is None:
            return None
        if prefix not in night_prefixes(spark):
            raise RuntimeError(f"Spark has no night {prefix}* for run {run_id} (a version built on another "
                               f"target?): its published views still read {current}*")
        return publish_views(spark, prefix)
