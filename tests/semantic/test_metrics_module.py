"""salesos.semantic without a warehouse: result formats, the manifest repointed at the connection's catalog, the
manifest stored in and read back from a warehouse file, MetricFlow's long errors cut to one line."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

import duckdb
import pytest

from salesos.semantic import ManifestMissing, read_manifest, store_manifest
from salesos.semantic.metrics import MetricResult, _one_line, _pointed_at


def test_results_render_as_table_json_and_csv():
    r = MetricResult(["metric_time__month", "rep", "bookings", "win_rate"],
                     [(datetime(2026, 9, 1), "005B", Decimal("1000.5"), 0.25), (datetime(2026, 10, 1), "005B",
                                                                                Decimal("0"), None)])
    table = r.render("table").splitlines()
    assert table[0].split() == ["metric_time__month", "rep", "bookings", "win_rate"]
    assert table[2].split() == ["2026-09-01", "005B", "1000.50", "0.25"]
    assert table[3].split() == ["2026-10-01", "005B", "0.00"]
    assert json.loads(r.render("json"))[0] == {"metric_time__month": "2026-09-01", "rep": "005B",
                                               "bookings": 1000.5, "win_rate": 0.25}
    assert r.render("csv").splitlines() == ["metric_time__month,rep,bookings,win_rate", "2026-09-01,005B,1000.50,0.25",
                                            "2026-10-01,005B,0.00,"]


def test_the_manifest_is_pointed_at_the_catalog_the_connection_has():
    rel = {"alias": "fct_opportunities", "schema_name": "marts", "database": "build",
           "relation_name": '"build"."marts"."fct_opportunities"'}
    manifest = {"semantic_models": [{"node_relation": dict(rel)}],
                "project_configuration": {"time_spines": [{"node_relation": dict(rel, alias="time_spine_days",
                                                                                  schema_name="semantic")}],
                                          "time_spine_table_configurations": [{"location": "build.semantic.x"}]}}
    out = _pointed_at(manifest, "salesos")
    assert out["semantic_models"][0]["node_relation"]["relation_name"] == '"salesos"."marts"."fct_opportunities"'
    spine = out["project_configuration"]["time_spines"][0]["node_relation"]
    assert spine["database"] == "salesos" and spine["relation_name"] == '"salesos"."semantic"."time_spine_days"'
    assert out["project_configuration"]["time_spine_table_configurations"][0]["location"] == "salesos.semantic.x"


def test_the_manifest_is_stored_in_the_warehouse_and_replaced_by_the_next_build(tmp_path):
    wh = tmp_path / "wh.duckdb"
    duckdb.connect(str(wh)).close()
    first = tmp_path / "first.json"
    first.write_text(json.dumps({"metrics": [{"name": "bookings"}]}), encoding="utf-8")
    assert store_manifest(wh, first, as_of=date(2026, 10, 30), run_id="a") == 1
    second = tmp_path / "second.json"
    second.write_text(json.dumps({"metrics": [{"name": "bookings"}, {"name": "quota"}]}), encoding="utf-8")
    assert store_manifest(wh, second, as_of=date(2026, 10, 31), run_id="b") == 2
    con = duckdb.connect(str(wh), read_only=True)
    try:
        assert [m["name"] for m in read_manifest(con, wh)["metrics"]] == ["bookings", "quota"]
        assert con.execute("select count(*), max(run_id) from semantic.semantic_manifest").fetchone() == (1, "b")
    finally:
        con.close()


def test_a_build_without_a_manifest_fails_naming_the_file(tmp_path):
    wh = tmp_path / "wh.duckdb"
    duckdb.connect(str(wh)).close()
    with pytest.raises(ManifestMissing, match=r"semantic_manifest\.json"):
        store_manifest(wh, tmp_path / "target" / "semantic_manifest.json", as_of=date(2026, 10, 31), run_id="a")


MF_ERROR = """Got error(s) during query resolution.

Error #1:
  Message:

    The given input does not match any of the available group-by-items for
    SimpleMetric('quota'). Common issues are:

      * Incorrect names.

    Suggestions:
      [
        'rep__team_name',
        'rep__region',
      ]

  Query Input:

    deal__segment

  Issue Location:

    [Resolve Query(['quota_attainment'])]
"""


def test_metricflow_errors_become_one_line():
    line = _one_line(RuntimeError(MF_ERROR))
    assert line == "'deal__segment' is not a dimension of metric 'quota'; did you mean rep__team_name, rep__region?"
    assert _one_line(RuntimeError("something else\nmore")) == "MetricFlow cannot answer the query: something else"
