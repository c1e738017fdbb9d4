"""`salesos metrics list` and `salesos metrics query` on a published warehouse: output formats, one-line errors,
read-only, kept versions."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import duckdb
import pytest

from salesos.cli import main


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["metrics", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- fast: warehouses the semantic layer cannot answer from ------------------------------------------------


def test_a_missing_warehouse_is_one_line(tmp_path, capsys):
    code, out, err = _run(capsys, "list", "--warehouse", str(tmp_path / "nope.duckdb"))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "no warehouse at" in err


def test_a_warehouse_without_a_manifest_says_how_to_get_one(tmp_path, capsys):
    wh = tmp_path / "old.duckdb"
    duckdb.connect(str(wh)).close()
    code, _, err = _run(capsys, "query", "--warehouse", str(wh), "--metrics", "bookings")
    assert code == 1
    assert err.count("\n") == 1 and "has no semantic manifest" in err and "salesos run" in err


def test_an_unknown_version_is_one_line(tmp_path, capsys):
    wh = tmp_path / "wh.duckdb"
    duckdb.connect(str(wh)).close()
    code, _, err = _run(capsys, "list", "--warehouse", str(wh), "--version", "7")
    assert code == 1 and err.count("\n") == 1 and "no kept version '7'" in err


# --- end to end: the XS sample night ----------------------------------------------------------------------


@pytest.mark.e2e
def test_list_names_every_metric_with_its_dimensions(xs_night, capsys):
    code, out, _ = _run(capsys, "list", "--warehouse", str(xs_night), "--json")
    assert code == 0
    listed = {m["name"]: m for m in json.loads(out)}
    for name in ("bookings", "win_rate", "quota_attainment", "pipeline_coverage", "forecast_wape", "meetings"):
        assert name in listed
    dims = set(listed["win_rate"]["dimensions"])
    assert {"metric_time__fiscal_quarter", "metric_time__month", "rep", "team", "team__team_name", "region",
            "rep__current_team_name", "rep__current_region", "deal__current_team_name", "deal__segment"} <= dims
    code, out, _ = _run(capsys, "list", "--warehouse", str(xs_night))
    assert code == 0 and "win_rate (ratio): won_deals / closed_deals" in out


@pytest.mark.e2e
def test_every_entity_listed_for_a_metric_is_one_a_query_accepts(xs_night):
    """An entity a metric reaches only through a join is listed with its links (`deal__team` for pipeline), as a
    query must spell it; MetricFlow plans every listed entity for its metric."""
    from salesos.semantic import SemanticLayer

    with SemanticLayer(xs_night) as layer:
        listed = {m["name"]: m["dimensions"] for m in layer.list_metrics()}
        assert "deal__team" in listed["pipeline"] and "team" not in listed["pipeline"]
        assert "team" in listed["bookings"]
        planned = 0
        for metric, dims in listed.items():
            for entity in (d for d in dims if d.split("__")[-1] in ("team", "region", "rep", "deal")):
                assert layer.explain([metric], [entity]), (metric, entity)
                planned += 1
    assert planned > 100


@pytest.mark.e2e
def test_query_win_rate_per_team_and_fiscal_quarter_as_csv(xs_night, capsys):
    """The rate is recomputed from the counts of the quarter, not averaged over months or reps."""
    code, out, err = _run(capsys, "query", "--warehouse", str(xs_night), "--metrics", "win_rate,won_deals",
                          "--group-by", "deal__team_name,metric_time__fiscal_quarter", "--csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows and set(rows[0]) == {"deal__team_name", "metric_time__fiscal_quarter", "win_rate", "won_deals"}
    con = duckdb.connect(str(xs_night), read_only=True)
    try:
        team, quarter = con.execute(
            "select team_name, 'FY' || fiscal_year || '-Q' || fiscal_quarter from marts.mart_win_rates "
            "group by 1, 2 order by sum(closed_count) desc limit 1").fetchone()
        want = con.execute(
            "select sum(won_count) / sum(closed_count) from marts.mart_win_rates "
            "where team_name = ? and 'FY' || fiscal_year || '-Q' || fiscal_quarter = ?", [team, quarter]).fetchone()[0]
    finally:
        con.close()
    row = next(r for r in rows if r["deal__team_name"] == team and r["metric_time__fiscal_quarter"] == quarter)
    assert float(row["win_rate"]) == pytest.approx(want, rel=1e-5)


@pytest.mark.e2e
def test_query_json_with_where_order_and_limit(xs_night, capsys):
    wh = str(xs_night)
    code, out, err = _run(capsys, "query", "--warehouse", wh, "--metrics", "bookings,quota,quota_attainment",
                          "--group-by", "region,metric_time__fiscal_year",
                          "--where", "{{ TimeDimension('metric_time', 'day') }} <= '2026-10-31'",
                          "--order=-bookings", "--limit", "3", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert len(rows) == 3
    assert [r["bookings"] for r in rows] == sorted((r["bookings"] for r in rows), reverse=True)
    top = rows[0]
    assert top["quota_attainment"] == pytest.approx(top["bookings"] / top["quota"], rel=1e-9)


@pytest.mark.e2e
@pytest.mark.parametrize(("args", "says"), [
    (["--metrics", "bookingz"], "unknown metric 'bookingz'; did you mean bookings?"),
    (["--metrics", "quota", "--group-by", "deal__segment"], "'deal__segment' is not a dimension of metric 'quota'"),
    (["--metrics", "bookings", "--group-by", "rep__team"], "deal__team_id, rep__current_team_id"),
    (["--metrics", "bookings", "--where", "{{ Dimension('rep__nope') }} = 'x'"], "the --where filter names no dimension"),
])
def test_a_query_it_cannot_answer_is_one_line(xs_night, capsys, args, says):
    code, out, err = _run(capsys, "query", "--warehouse", str(xs_night), *args)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and says in err, err


@pytest.mark.e2e
def test_queries_are_read_only_and_a_kept_version_answers_too(xs_night, capsys):
    """Kept versions are read-only files; the live one is not changed by a query (nor locked: a read-only open)."""
    before = _sha(xs_night)
    code, out, err = _run(capsys, "query", "--warehouse", str(xs_night), "--version", "1",
                          "--metrics", "bookings", "--group-by", "metric_time__fiscal_year")
    assert code == 0, err
    live_code, live_out, _ = _run(capsys, "query", "--warehouse", str(xs_night),
                                  "--metrics", "bookings", "--group-by", "metric_time__fiscal_year")
    assert live_code == 0 and live_out == out  # one version published: the kept copy is the live warehouse
    code, sql, _ = _run(capsys, "query", "--warehouse", str(xs_night), "--metrics", "bookings",
                        "--explain")
    assert code == 0 and "select" in sql.lower() and "fct_opportunities" in sql
    assert _sha(xs_night) == before
