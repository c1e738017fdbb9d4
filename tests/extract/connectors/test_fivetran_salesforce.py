"""The fivetran/dbt_salesforce integration seeds, as committed, run the whole night with the fivetran source.

The numbers are checked against a hand count made here from the seed CSVs with plain Python, current rows
taken as Fivetran's own staging takes them (`stg_salesforce__opportunity`: `coalesce(_fivetran_active, true)`,
then `not coalesce(is_deleted, false)`), open/closed/won from the rows' own `is_closed`/`is_won` flags (the
seeds' stage names are hashed, so no name could say it). Every opportunity of the seeds is `is_deleted`, so
the published marts hold no deal: the second build clears that flag in a copy (the only change) to check the
win rates and the pipeline on the eight current deals. About 40 s + 25 s.
"""

from __future__ import annotations

import csv
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from salesos import pipeline
from salesos.run_context import RunContext

pytestmark = pytest.mark.e2e

SEEDS = Path(__file__).resolve().parents[2] / "fixtures" / "fivetran_salesforce"
SETTINGS = SEEDS / "settings.yml"
AS_OF = date(2019, 4, 5)  # the day after the seeds' last opportunity sync (2019-04-04 18:47:01)


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def _seed(name: str) -> list[dict[str, str]]:
    with (SEEDS / f"{name}.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def hand_count(opportunities: list[dict[str, str]]) -> dict[str, object]:
    """Open pipeline and win rates of the current, not deleted opportunities, counted by hand."""
    current = [o for o in opportunities if o["_fivetran_active"].strip() == "" or _true(o["_fivetran_active"])]
    live = [o for o in current if not _true(o["is_deleted"])]

    def amount(o: dict[str, str]) -> Decimal:
        return Decimal(o["amount"]) if o["amount"].strip() else Decimal(0)

    open_ = [o for o in live if not _true(o["is_closed"]) and date.fromisoformat(o["created_date"][:10]) <= AS_OF]
    won = [o for o in live if _true(o["is_closed"]) and _true(o["is_won"])]
    lost = [o for o in live if _true(o["is_closed"]) and not _true(o["is_won"])]
    return {
        "current": len(current),
        "live": len(live),
        "open_count": len(open_),
        "open_amount": sum((amount(o) for o in open_), Decimal(0)),
        "won_count": len(won),
        "lost_count": len(lost),
        "won_amount": sum((amount(o) for o in won), Decimal(0)),
        "lost_amount": sum((amount(o) for o in lost), Decimal(0)),
    }


def warehouse_count(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
    """The same numbers from the marts."""
    live = con.execute("select count(*) from marts.fct_opportunities").fetchone()[0]
    open_count, open_amount = con.execute(
        "select coalesce(sum(open_count), 0), coalesce(sum(open_amount), 0) from marts.mart_pipeline "
        "where snapshot_date = ?", [AS_OF]
    ).fetchone()
    won_count, lost_count, won_amount, lost_amount = con.execute(
        "select coalesce(sum(won_count), 0), coalesce(sum(lost_count), 0), coalesce(sum(won_amount), 0), "
        "coalesce(sum(lost_amount), 0) from marts.mart_win_rates"
    ).fetchone()
    current = con.execute("select count(*) from raw.opportunities").fetchone()[0]
    return {
        "current": current,
        "live": live,
        "open_count": int(open_count),
        "open_amount": Decimal(open_amount),
        "won_count": int(won_count),
        "lost_count": int(lost_count),
        "won_amount": Decimal(won_amount),
        "lost_amount": Decimal(lost_amount),
    }


def _ctx(exports: Path, root: Path) -> RunContext:
    return RunContext.create(as_of=AS_OF, exports=exports, warehouse=root / "salesos.duckdb",
                             settings_file=SETTINGS, source="fivetran-salesforce")


def test_the_seeds_as_committed_publish_a_night_that_matches_the_hand_count(tmp_path: Path) -> None:
    ctx = _ctx(SEEDS, tmp_path)
    summary = pipeline.run_all(ctx)
    assert summary["run_id"] == ctx.run_id
    text = pipeline.format_summary(summary)
    assert "from the fivetran-salesforce tables" in text
    assert "sf_opportunity_data: 10 landed -> 8 current" in text
    assert "sf_opportunity_history_data: 10 landed -> 10 OpportunityHistory" in text
    expected = hand_count(_seed("sf_opportunity_data"))
    # eight current rows (two are inactive versions), every one of them deleted in Salesforce
    assert (expected["current"], expected["live"]) == (8, 0)
    con = duckdb.connect(str(ctx.warehouse), read_only=True)
    try:
        assert warehouse_count(con) == expected
        # the history-mode copy of Opportunity gave one history row per version (one version per id here)
        assert con.execute("select count(*) from raw.opportunity_histories").fetchone()[0] == len(
            _seed("sf_opportunity_history_data"))
    finally:
        con.close()
    # the landed tables are archived untouched
    for f in SEEDS.glob("sf_*_data.csv"):
        if f.stem in ("sf_opportunity_data", "sf_opportunity_history_data", "sf_account_data", "sf_user_data"):
            assert (ctx.archive_dir / "landed" / f.name).read_bytes() == f.read_bytes()


def test_the_current_deals_give_the_hand_counted_win_rates_and_pipeline(tmp_path: Path) -> None:
    landed = tmp_path / "landed"
    shutil.copytree(SEEDS, landed)
    rows = _seed("sf_opportunity_data")
    for r in rows:
        r["is_deleted"] = "false"
    with (landed / "sf_opportunity_data.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    ctx = _ctx(landed, tmp_path / "wh")
    pipeline.extract(ctx)
    pipeline.validate(ctx)
    pipeline.build(ctx)
    expected = hand_count(rows)
    assert expected["live"] == 8 and expected["won_count"] == 5 and expected["lost_count"] == 3
    assert expected["won_amount"] == Decimal("24120000") and expected["lost_amount"] == Decimal("200001")
    con = duckdb.connect(str(ctx.build_warehouse), read_only=True)
    try:
        assert warehouse_count(con) == expected
    finally:
        con.close()
