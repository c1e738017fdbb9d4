"""`salesos metrics list` and `salesos metrics query`: MetricFlow against a published warehouse, read-only.

MetricFlow plans each query from the semantic manifest stored in the warehouse (salesos.semantic.manifest) and
renders SQL for the warehouse's engine; this module runs that SQL on a read-only connection: the DuckDB file
itself, or, on the postgres target, the Postgres database the marts were built in (the manifest still comes
from the published DuckDB file, which is the version record). Relations are pointed at the catalog the
connection actually has, so a kept version or a copy of the file under another name answers the same.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from salesos.semantic.manifest import read_manifest

log = logging.getLogger(__name__)

__all__ = ["MetricQueryError", "MetricResult", "SemanticLayer", "list_metrics", "metric_warehouse", "query_metrics"]

FORMATS = ("table", "json", "csv")
# metric_time's standard grains a query may ask for; the time spine adds the fiscal ones.
STANDARD_GRAINS = ("day", "week", "month", "quarter", "year")


class MetricQueryError(ValueError):
    """A query MetricFlow cannot answer (unknown metric or dimension, bad filter); its message is one line."""


@dataclass
class MetricResult:
    """The rows of a metric query, with the SQL MetricFlow wrote for it."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    sql: str = ""

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def render(self, fmt: str = "table") -> str:
        """The rows as an aligned text table, JSON (a list of objects) or CSV."""
        if fmt == "json":
            return json.dumps(self.records(), default=_json_value, indent=1)
        if fmt == "csv":
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(self.columns)
            writer.writerows([[_text(v) for v in row] for row in self.rows])
            return out.getvalue().rstrip("\n")
        cells = [self.columns, *[[_text(v) for v in row] for row in self.rows]]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.2f}"
    if isinstance(value, datetime) and value.time() == datetime.min.time():
        return value.date().isoformat()
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime) and value.time() == datetime.min.time():
        return value.date().isoformat()
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


@dataclass
class _Connection:
    """A read-only connection that runs one statement at a time and hands back (columns, rows)."""

    engine: str  # "duckdb" or "postgres"
    handle: Any
    catalog: str = field(default="")

    def run(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        if self.engine == "duckdb":
            result = self.handle.execute(sql)
            columns = [d[0] for d in result.description]
            return columns, result.fetchall()
        with self.handle.cursor() as cur:
            cur.execute(sql)
            return [d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()]

    def close(self) -> None:
        self.handle.close()


def _open_duckdb(warehouse: Path) -> duckdb.DuckDBPyConnection:
    from salesos.warehouse.duckdb_limits import apply_memory_limit

    if not warehouse.is_file():
        raise FileNotFoundError(f"no warehouse at {warehouse}")
    con = duckdb.connect(str(warehouse), read_only=True)
    apply_memory_limit(con)
    return con


def _pointed_at(manifest: dict[str, Any], catalog: str) -> dict[str, Any]:
    """The manifest with every relation in `catalog` (the build copy's catalog name may differ)."""

    def repoint(relation: dict[str, Any]) -> None:
        relation["database"] = catalog
        relation["relation_name"] = f'"{catalog}"."{relation["schema_name"]}"."{relation["alias"]}"'

    for model in manifest.get("semantic_models", []):
        repoint(model["node_relation"])
    config = manifest.get("project_configuration", {})
    for spine in config.get("time_spines", []):
        repoint(spine["node_relation"])
    for spine in config.get("time_spine_table_configurations", []):
        spine["location"] = f"{catalog}.{spine['location'].split('.', 1)[-1]}"
    return manifest


class SemanticLayer:
    """MetricFlow over one published warehouse (read-only); use as a context manager."""

    def __init__(self, warehouse: Path, *, target: str = "duckdb", pg_dsn: str | None = None) -> None:
        self.warehouse = warehouse
        con = _open_duckdb(warehouse)
        try:
            manifest = read_manifest(con, warehouse)
        except BaseException:
            con.close()
            raise
        if target == "postgres":
            con.close()
            import psycopg2

            from salesos.warehouse.postgres import pg_dsn_from_env

            pg = psycopg2.connect(pg_dsn or pg_dsn_from_env())
            pg.set_session(readonly=True, autocommit=True)
            self._con = _Connection("postgres", pg)
        elif target == "duckdb":
            self._con = _Connection("duckdb", con)
        else:
            con.close()
            raise MetricQueryError(f"unknown target {target!r}: duckdb or postgres")
        self._con.catalog = str(self._con.run("select current_database()")[1][0][0])
        self.manifest = _pointed_at(manifest, self._con.catalog)
        self._engine: Any = None

    def __enter__(self) -> SemanticLayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._con.close()

    @property
    def engine(self) -> Any:
        """The MetricFlow engine, built on first use (parsing the manifest takes a second)."""
        if self._engine is None:
            self._engine = _build_engine(self.manifest, self._con)
        return self._engine

    def metric_names(self) -> list[str]:
        return sorted(m["name"] for m in self.manifest.get("metrics", []))

    def list_metrics(self, *, with_dimensions: bool = True) -> list[dict[str, Any]]:
        """Every metric: name, type, label, description and (optionally) the dimensions it can be grouped by."""
        out = []
        dims: dict[str, list[str]] = {}
        if with_dimensions:
            spines = self.manifest.get("project_configuration", {}).get("time_spines", [])
            grains = [*STANDARD_GRAINS, *(g["name"] for s in spines for g in s.get("custom_granularities", []))]
            for metric in self.engine.list_metrics(include_dimensions=True):
                names = {d.dunder_name for d in metric.dimensions if not d.dunder_name.startswith("metric_time")}
                dims[metric.name] = [*(f"metric_time__{g}" for g in grains),
                                     *sorted(self._entity_group_bys(metric.name) | names)]
        for m in sorted(self.manifest.get("metrics", []), key=lambda m: m["name"]):
            item = {"name": m["name"], "type": m["type"], "label": m.get("label") or "",
                    "description": " ".join((m.get("description") or "").split())}
            if with_dimensions:
                item["dimensions"] = dims.get(m["name"], [])
            out.append(item)
        return out

    def _entity_group_bys(self, metric_name: str) -> set[str]:
        """The entities a metric can be grouped by, spelled as a query must name them: `team` where the metric's
        own semantic model has the entity, `deal__team` where it reaches it only through the deal.

        MetricFlow's `entities_for_metrics` gives bare element names, which its query parser then refuses for a
        joined entity; the annotated specs of the same group-by item set carry the entity links, and a spec's
        `dunder_name` (links + element name) is what `mf list entities` prints and a query accepts.
        """
        from metricflow.engine.metricflow_engine import ENTITY_WITH_ANY_PROPERTIES
        from metricflow_semantic_interfaces.references import MetricReference
        from metricflow_semantics.model.semantics.element_filter import GroupByItemSetFilter
        from metricflow_semantics.model.semantics.linkable_element import LinkableElementType

        items = self.engine._semantic_manifest_lookup.metric_lookup.get_common_group_by_items(
            metric_references=(MetricReference(element_name=metric_name),),
            set_filter=GroupByItemSetFilter.create(any_properties_allowlist=ENTITY_WITH_ANY_PROPERTIES))
        return {a.spec.dunder_name for a in items.annotated_specs if a.element_type is LinkableElementType.ENTITY}

    def query(self, metrics: Sequence[str], group_by: Sequence[str] = (), *, where: Sequence[str] = (),
              order: Sequence[str] = (), limit: int | None = None) -> MetricResult:
        """Metrics grouped by dimensions (`metric_time__month`, `team__team_name`, ...), as MetricFlow computes them."""
        sql = self.explain(metrics, group_by, where=where, order=order, limit=limit)
        try:
            columns, rows = self._con.run(sql)
        except Exception as exc:
            raise MetricQueryError(f"the warehouse could not run the query: {_first_line(str(exc))}") from exc
        return MetricResult(columns, rows, sql)

    def explain(self, metrics: Sequence[str], group_by: Sequence[str] = (), *, where: Sequence[str] = (),
                order: Sequence[str] = (), limit: int | None = None) -> str:
        """The SQL MetricFlow writes for the query, for this warehouse's engine."""
        if not metrics:
            raise MetricQueryError("name at least one metric (--metrics); `salesos metrics list` shows them")
        known = self.metric_names()
        for name in metrics:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else "; `salesos metrics list` shows them"
                raise MetricQueryError(f"unknown metric {name!r}{hint}")
        from metricflow.engine.metricflow_engine import MetricFlowQueryRequest

        request = MetricFlowQueryRequest.create(metric_names=list(metrics), group_by_names=list(group_by) or None,
                                                where_constraints=list(where) or None,
                                                order_by_names=list(order) or None, limit=limit)
        try:
            explained = self.engine.explain(mf_request=request)
        except Exception as exc:
            raise MetricQueryError(_one_line(exc)) from exc
        sql: str = explained.sql_statement.without_descriptions.sql
        return sql


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text.strip())


_SECTIONS = {"Message:", "Query Input:", "Suggestions:", "Issue Location:"}


def _one_line(exc: Exception) -> str:
    """MetricFlow's multi-line explanation of a query it cannot answer, cut to one line: what, where, suggestions."""
    lines = [line.strip() for line in str(exc).splitlines()]

    def section(title: str) -> list[str]:
        if title not in lines:
            return []
        out = []
        for line in lines[lines.index(title) + 1:]:
            if line in _SECTIONS or re.fullmatch(r"Error #\d+:", line):
                break
            if line:
                out.append(line)
        return out

    message = " ".join(section("Message:")).split(" Common issues are:")[0]
    given = section("Query Input:")
    suggestions = [s.strip("',[] ") for s in section("Suggestions:") if s.strip("',[] ")]
    if not message:
        return f"MetricFlow cannot answer the query: {_first_line(str(exc))}"
    where = re.search(r"for (\w+)\('([^']+)'\)", message)
    if given and where and "group-by-items" in message and given[0].startswith("WhereFilter"):
        text = f"the --where filter names no dimension of metric {where.group(2)!r}"
    elif given and where and "group-by-items" in message:
        text = f"{given[0]!r} is not a dimension of metric {where.group(2)!r}"
    else:
        text = message + (f" (input: {given[0]})" if given else "")
    if suggestions:
        text += f"; did you mean {', '.join(suggestions[:4])}?"
    return text


def _build_engine(manifest: dict[str, Any], con: _Connection) -> Any:
    from metricflow.engine.metricflow_engine import MetricFlowEngine
    from metricflow_semantics.model.dbt_manifest_parser import parse_manifest_from_dbt_generated_manifest
    from metricflow_semantics.model.semantic_manifest_lookup import SemanticManifestLookup

    parsed = parse_manifest_from_dbt_generated_manifest(json.dumps(manifest))
    return MetricFlowEngine(semantic_manifest_lookup=SemanticManifestLookup(parsed), sql_client=_SqlClient(con))


class _SqlClient:
    """MetricFlow's SqlClient protocol on a salesos read-only connection (MetricFlow needs only `query`)."""

    def __init__(self, con: _Connection) -> None:
        from metricflow.protocols.sql_client import SqlEngine
        from metricflow.sql.render.duckdb_renderer import DuckDbSqlPlanRenderer
        from metricflow.sql.render.postgres import PostgresSQLSqlPlanRenderer

        self._con = con
        if con.engine == "postgres":
            self.sql_engine_type, self.sql_plan_renderer = SqlEngine.POSTGRES, PostgresSQLSqlPlanRenderer()
        else:
            self.sql_engine_type, self.sql_plan_renderer = SqlEngine.DUCKDB, DuckDbSqlPlanRenderer()

    def query(self, stmt: str, sql_bind_parameter_set: Any = None) -> Any:
        from metricflow.data_table.mf_table import MetricFlowDataTable

        columns, rows = self._con.run(stmt)
        return MetricFlowDataTable.create_from_rows(column_names=columns, rows=rows)

    def execute(self, stmt: str, sql_bind_parameter_set: Any = None) -> None:
        raise MetricQueryError("the semantic layer is read-only")

    def dry_run(self, stmt: str, sql_bind_parameter_set: Any = None) -> None:
        self._con.run(f"explain {stmt}")

    def close(self) -> None:
        self._con.close()

    def render_bind_parameter_key(self, bind_parameter_key: str) -> str:
        return f"${bind_parameter_key}"


def metric_warehouse(warehouse: Path, data_dir: Path | None = None, version: str | None = None) -> Path:
    """The file to answer from: the live warehouse, or a kept version by id or number (`salesos versions`)."""
    warehouse = warehouse.expanduser().resolve()
    if version is None:
        return warehouse
    from salesos.publish.versions import list_versions

    kept = list_versions(warehouse, (data_dir or warehouse.parent).expanduser().resolve())
    matches = [v for v in kept if v.version_id == version
               or (version.isdigit() and int(v.version_id.split("_", 1)[0]) == int(version))]
    if not matches:
        ids = ", ".join(v.version_id for v in kept) or "none"
        raise MetricQueryError(f"no kept version {version!r} of {warehouse} (kept: {ids})")
    return matches[0].path


def list_metrics(warehouse: Path, *, target: str = "duckdb", with_dimensions: bool = True) -> list[dict[str, Any]]:
    """Every metric of the published warehouse's semantic layer."""
    with SemanticLayer(warehouse, target=target) as layer:
        return layer.list_metrics(with_dimensions=with_dimensions)


def query_metrics(warehouse: Path, metrics: Sequence[str], group_by: Sequence[str] = (), *, target: str = "duckdb",
                  where: Sequence[str] = (), order: Sequence[str] = (), limit: int | None = None) -> MetricResult:
    """One metric query against the published warehouse."""
    with SemanticLayer(warehouse, target=target) as layer:
        return layer.query(metrics, group_by, where=where, order=order, limit=limit)
