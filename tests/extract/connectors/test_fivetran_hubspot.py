"""The fivetran/dbt_hubspot integration seeds through the fivetran-hubspot source, checked against a hand count.

The hand count is made here from the seed CSVs with plain Python: a deal is open, won or lost by its
pipeline stage's own `is_closed` / `closed_won` flags in `deal_pipeline_stage_data.csv`. The seeds as
committed have no stage, close date or amount on any deal (the package anonymised them), so the contract
quarantines every deal and validation stops the night before dbt: the first test checks exactly that.
The second gives each deal a stage of the seeds (every stage id in turn), an amount, a close date, an owner
where it has none and a sync time, in a copy (the only changes), runs the whole night and checks the
published marts against the hand count. The seeds have no closed-lost stage (every `is_closed` stage is
`closed_won`), so lost deals are checked by the unit tests (test_fivetran_hubspot_translate.py).
About 10 s + 40 s.
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
from salesos.validate.gx_checks import ValidationFailed

pytestmark = pytest.mark.e2e

SEEDS = Path(__file__).resolve().parents[2] / "fixtures" / "fivetran_hubspot"
SETTINGS = SEEDS / "settings.yml"
AS_OF = date(2021, 1, 16)  # the day after the seeds' last deal was created (2021-01-15 23:14:50)


def _seed(name: str) -> list[dict[str, str]]:
    with (SEEDS / f"{name}.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def hand_count(deals: list[dict[str, str]], stages: list[dict[str, str]]) -> dict[str, object]:
    """Won, lost and open deals and amounts of the live deals, from the stages' own flags."""
    flags = {s["stage_id"]: (_true(s["is_closed"]), _true(s["closed_won"])) for s in stages}
    live = [d for d in deals if not _true(d["is_deleted"])]

    def amount(d: dict[str, str]) -> Decimal:
        return Decimal(d["property_amount"]) if d["property_amount"].strip() else Decimal(0)

    open_ = [d for d in live if not flags[d["deal_pipeline_stage_id"]][0]]
    won = [d for d in live if flags[d["deal_pipeline_stage_id"]] == (True, True)]
    lost = [d for d in live if flags[d["deal_pipeline_stage_id"]] == (True, False)]
    return {
        "live": len(live),
        "open_count": len(open_),
        "open_amount": sum((amount(d) for d in open_), Decimal(0)),
        "won_count": len(won),
        "lost_count": len(lost),
        "won_amount": sum((amount(d) for d in won), Decimal(0)),
        "lost_amount": sum((amount(d) for d in lost), Decimal(0)),
    }


def warehouse_count(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
    live = con.execute("select count(*) from marts.fct_opportunities").fetchone()[0]
    open_count, open_amount = con.execute(
        "select coalesce(sum(open_count), 0), coalesce(sum(open_amount), 0) from marts.mart_pipeline "
        "where snapshot_date = ?", [AS_OF]
    ).fetchone()
    won_count, lost_count, won_amount, lost_amount = con.execute(
        "select coalesce(sum(won_count), 0), coalesce(sum(lost_count), 0), coalesce(sum(won_amount), 0), "
        "coalesce(sum(lost_amount), 0) from marts.mart_win_rates"
    ).fetchone()
    return {
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
                             settings_file=SETTINGS, source="fivetran-hubspot")


def test_the_seeds_as_committed_quarantine_every_deal_for_its_missing_stage(tmp_path: Path) -> None:
    deals = _seed("deal_data")
    assert len(deals) == 44 and not any(d["deal_pipeline_stage_id"] or d["property_closedate"] for d in deals)
    ctx = _ctx(SEEDS, tmp_path)
    pipeline.extract(ctx)
    with pytest.raises(ValidationFailed, match=r"Opportunity\.csv: expect_table_row_count"):
        pipeline.validate(ctx)
    con = duckdb.connect(str(ctx.build_warehouse), read_only=True)
    try:
        quarantined = con.execute(
            "select count(*), count(distinct landed_row) from quarantine.opportunities where landed_table = 'deal_data'"
        ).fetchone()
        fields = {f for (f,) in con.execute("select distinct _field from quarantine.opportunities").fetchall()}
    finally:
        con.close()
    assert quarantined == (44, 44)
    assert "stage_name" in fields
    # the landed tables are archived untouched
    for name in ("deal_data", "deal_pipeline_stage_data", "owner_data", "company_data", "deal_stage_data"):
        assert (ctx.archive_dir / "landed" / f"{name}.csv").read_bytes() == (SEEDS / f"{name}.csv").read_bytes()


def test_the_deals_with_stages_give_the_hand_counted_win_rates_and_pipeline(tmp_path: Path) -> None:
    landed = tmp_path / "landed"
    shutil.copytree(SEEDS, landed)
    stages = _seed("deal_pipeline_stage_data")
    stage_ids = sorted(s["stage_id"] for s in stages)
    deals = _seed("deal_data")
    closed = {s["stage_id"] for s in stages if _true(s["is_closed"])}
    for i, d in enumerate(deals):
        d["deal_pipeline_stage_id"] = stage_ids[(i * 7) % len(stage_ids)]
        d["property_amount"] = str(1000 * (i + 1))
        # closed deals closed on their create day; open ones are expected to close after the as-of date
        d["property_closedate"] = d["property_createdate"] if d["deal_pipeline_stage_id"] in closed else "2021-02-28"
        d["owner_id"] = d["owner_id"] or "35252170"
        d["_fivetran_synced"] = "2021-01-16 01:00:00"
    with (landed / "deal_data.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(deals[0]))
        writer.writeheader()
        writer.writerows(deals)
    ctx = _ctx(landed, tmp_path / "wh")
    summary = pipeline.run_all(ctx)
    text = pipeline.format_summary(summary)
    assert "from the fivetran-hubspot tables" in text
    assert "deal_data: 44 landed -> 44 current, 44 OpportunityHistory" in text
    assert "deal_company_data: 2 landed -> read into Opportunity" in text
    assert "deal_pipeline_stage_data: 71 landed -> 71 current" in text
    expected = hand_count(deals, stages)
    # every closed stage of the seeds is a won one (closed_won true): open and won deals, none lost
    assert (expected["live"], expected["open_count"], expected["won_count"], expected["lost_count"]) == (44, 41, 3, 0)
    con = duckdb.connect(str(ctx.warehouse), read_only=True)
    try:
        assert warehouse_count(con) == expected
    finally:
        con.close()
