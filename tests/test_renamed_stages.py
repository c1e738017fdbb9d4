"""A CRM with renamed stages gives the same numbers as one with Salesforce's default names.

The same sample is generated twice, once with three stages renamed ("Closed Won" -> "Signed", "Closed Lost"
-> "Dead", "Proposal/Price Quote" -> "Contract Sent") and its OpportunityStage export; every mart and
intermediate table built from it, stage names mapped back, equals the original's. Without the export the
Opportunity rows' own IsClosed/IsWon still say what the renamed stages mean; a renamed stage that only the
history shows (no deal is in it today) and that no setting names stops the run before dbt.
XS keeps this at dbt builds of about half a minute; the S numbers are in the run's own dbt test
(pipeline_latest_snapshot_matches_open_opportunities, an error now). The original is the shared `xs_night`
(the same sample, seed and settings: a whole night, built once per test session), so the renamed samples are
the only builds of their own; the models downstream of the forecasts (rebuilt by the night after its
forecast, left empty by a build) are not compared: they read no stage.
"""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pytest

from salesos import pipeline
from salesos.generate import generate
from salesos.run_context import RunContext
from salesos.validate.stages import UnknownStages
from tests.transform.mart_digests import AS_OF, SCALE, SEED, SETTINGS, fed_by_forecasts, sample_exports

pytestmark = pytest.mark.e2e

RENAME = {"Closed Won": "Signed", "Closed Lost": "Dead", "Proposal/Price Quote": "Contract Sent"}
# Tables that list the stages themselves (renamed plus the settings' default names): compared on their own.
STAGE_TABLES = {("intermediate", "int_stages__resolved"), ("marts", "dim_stages")}


def _build(exports: Path, root: Path) -> RunContext:
    """extract, validate and dbt build (no forecast: it reads only bookings, which have no stage)."""
    ctx = RunContext.create(as_of=AS_OF, exports=exports, warehouse=root / "salesos.duckdb", settings_file=SETTINGS)
    pipeline.extract(ctx)
    pipeline.validate(ctx)
    pipeline.build(ctx)
    return ctx


@pytest.fixture(scope="module")
def builds(tmp_path_factory, request: pytest.FixtureRequest) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("renamed")
    samples = {
        "renamed": {"rename_stages": RENAME},
        "renamed_bare": {"rename_stages": RENAME, "stage_export": False},
    }
    out: dict[str, Path] = {}
    for name, options in samples.items():
        generate(root / name / "exports", scale=SCALE, seed=SEED, as_of=AS_OF, **options)
        ctx = _build(root / name / "exports", root / name / "wh")
        out[name], out["manifest"] = ctx.build_warehouse, ctx.run_dir / "dbt_target" / "manifest.json"
    # the original last: under xdist another worker may be building it meanwhile
    out["original"] = request.getfixturevalue("xs_night")
    out["original_exports"] = sample_exports(out["original"])
    out["root"] = root
    return out


def _mapped_back(column: str) -> str:
    cases = " ".join(f"when '{new}' then '{old}'" for old, new in RENAME.items())
    return f'case "{column}" {cases} else "{column}" end'


def _differences(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> tuple[int, int]:
    """Rows of the original not in the renamed build (names mapped back) and the other way round."""
    cols = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_catalog = 'original' and table_schema = ? and table_name = ? order by ordinal_position",
        [schema, table],
    ).fetchall()

    def select(db: str) -> str:
        exprs = []
        for c, t in cols:
            if t == "VARCHAR" and db == "renamed":
                exprs.append(_mapped_back(c))
            elif t in ("DOUBLE", "FLOAT"):
                exprs.append(f'round("{c}", 6)')  # parallel sums differ in the last bits
            else:
                exprs.append(f'"{c}"')
        return f"select {', '.join(exprs)} from {db}.{schema}.{table}"

    return tuple(
        con.execute(f"select count(*) from ({select(a)} except all {select(b)})").fetchall()[0][0]
        for a, b in (("original", "renamed"), ("renamed", "original"))
    )


def _attach(original: Path, renamed: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"attach '{original}' as original (read_only)")
    con.execute(f"attach '{renamed}' as renamed (read_only)")
    return con


def _open_on_as_of(con: duckdb.DuckDBPyConnection, db: str) -> tuple[int, float]:
    return con.execute(
        f"select count(*), round(sum(amount), 2) from {db}.marts.fct_pipeline_snapshots where snapshot_date = ?",
        [AS_OF],
    ).fetchall()[0]


def test_renamed_stages_with_their_export_give_the_same_marts(builds):
    con = _attach(builds["original"], builds["renamed"])
    tables = con.execute(
        "select table_schema, table_name from information_schema.tables where table_catalog = 'original' "
        "and table_schema in ('intermediate', 'marts') and table_type = 'BASE TABLE' "
        "and table_name not like '\\_%' escape '\\' order by 1, 2"  # not the hooks' bookkeeping tables
    ).fetchall()
    fed = fed_by_forecasts(builds["manifest"], ("intermediate", "marts"))
    assert "mart_forecast_accuracy" in fed
    compared = [t for t in tables if t not in STAGE_TABLES and t[1] not in fed]
    for must in ("fct_pipeline_snapshots", "mart_pipeline", "mart_win_rates", "mart_stage_conversion",
                 "fct_opportunity_stage_history", "fct_opportunities", "mart_sales_velocity"):
        assert ("marts", must) in compared
    differences = {f"{s}.{t}": d for s, t in compared if (d := _differences(con, s, t)) != (0, 0)}
    assert differences == {}
    n, amount = _open_on_as_of(con, "renamed")
    assert n > 0 and (n, amount) == _open_on_as_of(con, "original")
    open_deals = con.execute(
        "select count(*), round(sum(amount), 2) from renamed.marts.fct_opportunities where status = 'open'"
    ).fetchall()[0]
    assert (n, amount) == open_deals
    stages = dict(con.execute(
        "select stage_name, (is_closed, is_won, flags_source, stage_rank) from renamed.marts.dim_stages"
    ).fetchall())
    assert stages["Signed"] == (True, True, "opportunity_stages", 9)
    assert stages["Dead"] == (True, False, "opportunity_stages", 10)
    assert stages["Contract Sent"] == (False, False, "opportunity_stages", 7)
    funnel = con.execute("select distinct stage_name from renamed.marts.mart_stage_conversion").fetchall()
    assert ("Contract Sent",) in funnel and ("Proposal/Price Quote",) not in funnel


def test_without_the_export_the_opportunities_own_flags_keep_the_pipeline_right(builds):
    """The open pipeline and win rates need no export: Opportunity's IsClosed/IsWon say what Signed and Dead mean."""
    con = _attach(builds["original"], builds["renamed_bare"])
    assert _open_on_as_of(con, "renamed") == _open_on_as_of(con, "original")
    # (stage ranks differ: without the export Contract Sent is not in stage_order and sorts last)
    for table in ("mart_pipeline", "mart_win_rates", "mart_rep_performance"):
        assert _differences(con, "marts", table) == (0, 0), table
    sources = dict(con.execute("select stage_name, flags_source from renamed.marts.dim_stages").fetchall())
    assert sources["Signed"] == sources["Dead"] == sources["Contract Sent"] == "opportunity"


def test_a_renamed_stage_only_the_history_shows_stops_the_run_naming_it(builds, tmp_path):
    exports = tmp_path / "exports"
    exports.mkdir()
    bare = builds["root"] / "renamed_bare" / "exports"
    for p in bare.glob("*.csv"):
        if p.name != "Opportunity.csv":
            (exports / p.name).write_bytes(p.read_bytes())
    with (bare / "Opportunity.csv").open(newline="", encoding="utf-8") as fin, \
            (exports / "Opportunity.csv").open("w", newline="", encoding="utf-8") as fout:
        reader = csv.DictReader(fin)
        writer = csv.DictWriter(fout, fieldnames=list(reader.fieldnames or []), quoting=csv.QUOTE_ALL)
        writer.writeheader()
        # no deal is in the stage today: only the history shows it, and no setting names it
        writer.writerows(row for row in reader if row["StageName"] != "Contract Sent")
    warehouse = tmp_path / "wh" / "salesos.duckdb"
    ctx = RunContext.create(as_of=AS_OF, exports=exports, warehouse=warehouse, settings_file=SETTINGS)
    with pytest.raises(UnknownStages) as caught:
        pipeline.run_all(ctx)
    message = str(caught.value)
    assert message.startswith("unknown stage(s): OpportunityHistory.csv: stage 'Contract Sent' (")
    assert "\n" not in message and "closed_won_stages" in message and "OpportunityStage.csv" in message
    assert not warehouse.exists() and not ctx.build_dir.exists()


# -- stage metadata that changes between nights -------------------------------------------------

INCREMENTAL_TABLES = (
    ("intermediate", "int_opportunity_history__daily_states"),
    ("marts", "fct_pipeline_snapshots"),
    ("marts", "fct_opportunity_stage_history"),
    ("marts", "mart_pipeline"),
    ("marts", "mart_stage_conversion"),
)


def _night(exports: Path, warehouse: Path, run_id: str) -> Path:
    """Extract and dbt build (with tests) on a build copy, then swap it in as publish does."""
    ctx = RunContext.create(as_of=AS_OF, exports=exports, warehouse=warehouse, run_id=run_id, settings_file=SETTINGS)
    pipeline.extract(ctx)
    pipeline.build(ctx)
    ctx.build_warehouse.replace(warehouse)
    return ctx.run_dir / "dbt_target" / "run_results.json"


def test_a_stage_export_that_reorders_stages_rebuilds_the_incremental_tables_as_a_full_build(builds, tmp_path):
    """Night 1 ranks by stage_order; night 2 brings OpportunityStage.csv with two stages swapped in SortOrder.

    The incremental tables hold each row's stage rank: they notice the new stage rules and rebuild, so the
    incremental night equals a full build of night 2's exports (and is not left with night 1's ranks).
    """
    import json

    night1, night2 = tmp_path / "night1", tmp_path / "night2"
    original = builds["original_exports"]
    night1.mkdir()
    for p in original.glob("*.csv"):
        if p.name != "OpportunityStage.csv":
            (night1 / p.name).write_bytes(p.read_bytes())
    night2.mkdir()
    for p in night1.glob("*.csv"):
        (night2 / p.name).write_bytes(p.read_bytes())
    with (original / "OpportunityStage.csv").open(newline="", encoding="utf-8") as fin, \
            (night2 / "OpportunityStage.csv").open("w", newline="", encoding="utf-8") as fout:
        reader = csv.DictReader(fin)
        writer = csv.DictWriter(fout, fieldnames=list(reader.fieldnames or []), quoting=csv.QUOTE_ALL)
        writer.writeheader()
        swap = {"Needs Analysis": "4", "Value Proposition": "3"}
        writer.writerows(row | {"SortOrder": swap.get(row["MasterLabel"], row["SortOrder"])} for row in reader)
    incremental = tmp_path / "incremental" / "salesos.duckdb"
    _night(night1, incremental, "night1")
    results = json.loads(_night(night2, incremental, "night2").read_text())
    code = {r["unique_id"].split(".")[-1]: r.get("compiled_code") or "" for r in results["results"]}
    assert "max(snapshot_date)" in code["int_opportunity_history__daily_states"]  # the incremental branch ran
    full = tmp_path / "full" / "salesos.duckdb"
    _night(night2, full, "full")
    con = duckdb.connect()
    con.execute(f"attach '{full}' as original (read_only)")
    con.execute(f"attach '{incremental}' as renamed (read_only)")  # no renames here: _differences compares as is
    ranks = dict(con.execute("select stage_name, stage_rank from renamed.marts.dim_stages").fetchall())
    assert (ranks["Needs Analysis"], ranks["Value Proposition"]) == (4, 3)
    assert con.execute("select count(*) from renamed.marts.fct_pipeline_snapshots "
                       "where stage_name = 'Value Proposition' and stage_rank = 3").fetchall()[0][0] > 0
    for schema, table in INCREMENTAL_TABLES:
        assert _differences(con, schema, table) == (0, 0), table
