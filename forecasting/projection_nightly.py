"""The projection's night: read the built marts, replay or extend `forecasts.fct_period_projections`, store the model.

`forecasting.projection` is the library (features, deal model, simulation); this module is its input and
output. A first night (an empty table) and a full refresh replay every day of the last
`projection_replay_quarters` fiscal quarters; any other night projects the days since the last stored one
(normally just as_of). A day's rows are the same whichever night makes them: the model of a day is trained
on a fixed grid of training dates, on outcomes known then.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from forecasting import projection as pj
from forecasting.nightly import FORECAST_SCHEMA, code_version
from salesos.settings import Settings

log = logging.getLogger(__name__)

PROJECTION_TABLE = f"{FORECAST_SCHEMA}.fct_period_projections"

PROJECTION_DDL = f"""
create table if not exists {PROJECTION_TABLE} (
    as_of_date date not null,
    run_id varchar not null,
    level varchar not null,
    series_id varchar not null,
    series_key varchar not null,
    period_type varchar not null,
    period_start date not null,
    period_end date not null,
    days_into_period integer not null,
    pct_of_period_elapsed double not null,
    won_to_date double not null,
    open_pipeline_expected double not null,
    new_pipeline_expected double not null,
    projection double not null,
    lower_80 double not null,
    upper_80 double not null,
    lower_95 double not null,
    upper_95 double not null,
    commit_call double not null,
    best_case_call double not null,
    weighted_pipeline_call double not null,
    open_deals integer not null,
    model_trained_on date not null,
    is_replay boolean not null,
    code_version varchar not null
)
"""


@dataclass(frozen=True)
class ProjectionOptions:
    """The settings the projection reads (config/salesos.yml: projection_*, the one place of their defaults)."""

    replay_quarters: int
    simulations: int
    retrain_days: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ProjectionOptions:
        return cls(settings.projection_replay_quarters, settings.projection_simulations,
                   settings.projection_retrain_days)


def ensure_projection_table(con: Any) -> None:
    """Create the (append-only) projection table if missing: dbt reads it as a source."""
    con.execute(f"create schema if not exists {FORECAST_SCHEMA}")
    con.execute(PROJECTION_DDL)


def read_inputs(con: Any) -> pj.Inputs:
    """The pipeline states, the deals, the fiscal quarters and the open stages from the built marts."""
    snapshots = con.execute(
        "select snapshot_date, opportunity_id, owner_id, segment, opportunity_type, created_date, stage_name, "
        "stage_rank, forecast_category, close_date, amount, probability from marts.fct_pipeline_snapshots"
    ).df()
    leaf = ", ".join(dict.fromkeys(("owner_id", *pj.LEAF)))  # the owner (win rates) and each level's key
    deals = con.execute(
        f"select opportunity_id, {leaf}, created_date, close_date, status, amount from marts.fct_opportunities"
    ).df()
    quarters = con.execute("select min(date_day) as quarter_start from marts.dim_dates "
                           "group by fiscal_year, fiscal_quarter order by 1").df()["quarter_start"]
    stages = con.execute("select stage_name from marts.dim_stages where is_open").df()["stage_name"]
    return pj.Inputs(snapshots, deals, [pd.Timestamp(q).date() for q in quarters], set(stages))


def days_to_project(con: Any, as_of: date, quarter_starts: list[date], quarters: int,
                    full_refresh: bool) -> tuple[list[date], bool]:
    """The replay window on a first night or a full refresh (True); otherwise the days after the last stored
    one (a night missed is caught up), at most the window."""
    window = pj.replay_days(as_of, quarter_starts, quarters)
    if full_refresh:
        return window, True
    last = con.execute(f"select max(as_of_date) from {PROJECTION_TABLE} where as_of_date < ?", [as_of]).fetchone()[0]
    if last is None:
        return window, True
    start = max(pd.Timestamp(last).date() + timedelta(days=1), window[0])
    return [start + timedelta(days=i) for i in range((as_of - start).days + 1)], False


def store_projections(con: Any, rows: pd.DataFrame, days: list[date]) -> int:
    """Replace the rows of the projected days, in one transaction."""
    ensure_projection_table(con)
    con.execute("begin transaction")
    try:
        if days:
            con.execute(f"delete from {PROJECTION_TABLE} where as_of_date between ? and ?", [min(days), max(days)])
        if len(rows):
            con.register("_projection_rows", rows)
            cols = ", ".join(rows.columns)
            con.execute(f"insert into {PROJECTION_TABLE} ({cols}) select {cols} from _projection_rows")
            con.unregister("_projection_rows")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return len(rows)


def project(read_con: Any, write_con: Any, *, as_of: date, run_id: str, model_dir: Path, full_refresh: bool,
            options: ProjectionOptions) -> dict[str, Any]:
    """Project the days due tonight, append them, store the model and its calibration; the step's result."""
    t0, c0 = time.perf_counter(), time.process_time()
    inputs = read_inputs(read_con)
    p = pj.prepare(inputs)
    days, replayed = days_to_project(write_con, as_of, p.quarter_starts, options.replay_quarters, full_refresh)
    rows, model = pj.replay(p, days, as_of=as_of, simulations=options.simulations,
                            retrain_days=options.retrain_days)
    rows = rows.assign(run_id=run_id, code_version=code_version())
    written = store_projections(write_con, rows, days)
    result: dict[str, Any] = {
        "rows": written,
        "days": len(days),
        "replayed": replayed,
        "first_day": str(days[0]) if days else None,
        "rules": pj.rule_counts(p, days, inputs.open_stages),
    }
    if model is not None:
        # the model of the night scored out of time: the older model the shock was measured with, on the
        # windows known since it was trained (no extra fit)
        calib = pj.calibration(p, model.trained_on, earlier_model=model.earlier)
        model_dir.mkdir(parents=True, exist_ok=True)
        joblib.dump(dataclasses.replace(model, earlier=None), model_dir / "deal_model.joblib")
        card = pj.model_card(model, calib)
        (model_dir / "model_card.json").write_text(json.dumps(card, indent=1, default=str), encoding="utf-8")
        result |= {"model_dir": str(model_dir), "brier": calib.get("brier"), "examples": model.examples}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["cpu_seconds"] = round(time.process_time() - c0, 1)  # what the step needs where it has a core to itself
    log.info("projection: %s rows for %s day(s) in %.1f s (%.1f s CPU)", written, len(days), result["seconds"],
             result["cpu_seconds"])
    return result
