"""The nightly forecast step, in one place: plan, run the chunks, cache, store, chart.

Series come from `marts.fct_bookings_monthly` (won bookings per month at every level of the sales hierarchy:
the one definition the accuracy mart scores against). Each series gets the method its own rolling-origin
backtest picks (the library: `forecasting.select.forecast`), fitted in a process pool (`forecasting.pool`).
Rep, team, region and company forecasts are then reconciled (`forecasting.reconcile`) so they add up;
segments are a second split of the same company total and are reconciled to it proportionally.

The work is split so Airflow can spread it over workers: `plan` reads the series from the marts once and
writes them with a chunk plan (one chunk per region, the company and segments in one more); `run_chunks`
forecasts chunks without touching the warehouse (mapped tasks), taking unchanged series from the cache;
`store` reconciles the chunks' rows, checks them and appends them to `forecasts.fct_forecasts` (whose table
this module declares: `ensure_forecast_table`, called by the extract step so dbt sees the source); `charts`
draws actuals against forecasts for the report. `ForecastStep` holds the run's folders, settings and cache
policy; `forecast_all` runs plan, chunks and assembly in one process (benchmarks, tests).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from forecasting.methods import METHODS_FILE
from forecasting.prophet_fit import DEFAULT_PROPHET_BACKEND
from salesos.hierarchy import hierarchy, level_names

log = logging.getLogger(__name__)

HORIZON = 12
ORIGINS = 6
BOUNDS = ("yhat_lower_95", "yhat_lower_80", "yhat_upper_80", "yhat_upper_95")
ACTIVE_MONTHS = 12  # a rep with no booking in this many months (a leaver) is not forecast
NO_TEAM = hierarchy().missing_member  # the key fct_bookings_monthly gives a missing team


# ---------------------------------------------------------------------- the table: forecasts.fct_forecasts

FORECAST_SCHEMA = "forecasts"
FORECAST_TABLE = f"{FORECAST_SCHEMA}.fct_forecasts"

FORECAST_DDL = f"""
create table if not exists {FORECAST_TABLE} (
    as_of_date date not null,
    run_id varchar not null,
    series_id varchar not null,
    level varchar not null,
    series_key varchar not null,
    period_start date not null,
    horizon integer not null,
    yhat double not null,
    yhat_lower_80 double not null,
    yhat_upper_80 double not null,
    yhat_lower_95 double not null,
    yhat_upper_95 double not null,
    model varchar not null,
    model_params varchar not null,
    training_start date not null,
    training_end date not null,
    code_version varchar not null,
    is_selected boolean not null default true,
    is_backtest boolean not null default false
)
"""
# The columns in table order (the rows `forecasting.nightly.assemble_forecasts` returns).
FORECAST_COLUMNS = tuple(line.split()[0] for line in FORECAST_DDL.split("(", 1)[1].rsplit(")", 1)[0].splitlines()
                         if line.strip())


def code_version() -> str:
    try:
        return version("salesos")
    except PackageNotFoundError:  # running from a source tree without install
        return "unknown"


def ensure_forecast_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create the (append-only) forecast table if this warehouse has none yet: dbt reads it as a source.

    A warehouse written by an earlier version gets the columns added since (its past forecasts are kept:
    they are what the accuracy mart scores). Rows from before `series_key` existed were company forecasts.
    """
    con.execute(f"create schema if not exists {FORECAST_SCHEMA}")
    con.execute(FORECAST_DDL)
    have = {
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
            [FORECAST_SCHEMA, FORECAST_TABLE.split(".")[1]],
        ).fetchall()
    }
    if "series_key" not in have:
        con.execute(f"alter table {FORECAST_TABLE} add column series_key varchar default 'all'")
        con.execute(f"update {FORECAST_TABLE} set series_id = 'company:all' where series_id = 'company'")
    # rows from before Prophet's own forecast and the backtest track record were stored: published, live
    for column, default in (("is_selected", "true"), ("is_backtest", "false")):
        if column not in have:
            con.execute(f"alter table {FORECAST_TABLE} add column {column} boolean default {default}")


def store_forecasts(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> int:
    """Append a run's forecasts; returns how many rows were written.

    Live rows (`is_backtest` false) of a re-run as-of date replace that date's rows of the series, backtest rows
    included (a forecast made on the day replaces one reconstructed for it). Backtest rows (one set per origin
    as-of date) are written only for an (as_of_date, series_id) that has no row yet: re-running a night, a
    full refresh or a later night never duplicates the track record, and never puts a second forecast beside
    the one a run already stored for that date.
    """
    ensure_forecast_table(con)
    if "is_backtest" not in rows.columns:
        rows = rows.assign(is_backtest=False)
    if "is_selected" not in rows.columns:
        rows = rows.assign(is_selected=True)
    live = rows[~rows["is_backtest"].astype(bool)]
    con.execute("begin transaction")
    try:
        for (as_of, series_id), _ in live.groupby(["as_of_date", "series_id"]):
            con.execute(f"delete from {FORECAST_TABLE} where as_of_date = ? and series_id = ?", [as_of, series_id])
        con.register("_forecast_rows", rows)
        cols = ", ".join(rows.columns)
        before = con.execute(f"select count(*) from {FORECAST_TABLE}").fetchall()[0][0]
        con.execute(f"insert into {FORECAST_TABLE} ({cols}) select {cols} from _forecast_rows "
                    "where not is_backtest").fetchall()
        con.execute(
            f"""
            insert into {FORECAST_TABLE} ({cols})
            select {", ".join(f"r.{c}" for c in rows.columns)} from _forecast_rows as r
            where r.is_backtest
              and not exists (select 1 from {FORECAST_TABLE} as t
                              where t.as_of_date = r.as_of_date and t.series_id = r.series_id)
            """
        ).fetchall()
        written = con.execute(f"select count(*) from {FORECAST_TABLE}").fetchall()[0][0] - before
        con.unregister("_forecast_rows")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return int(written)


# ------------------------------------------------------------------------------------------------ the plan

@dataclass
class SeriesSet:
    """The series to forecast and how reps roll up."""

    series: dict[str, pd.DataFrame]  # series_id -> ds, y (complete months)
    meta: pd.DataFrame  # series_id, level, series_key, series_name
    mapping: pd.DataFrame  # rep, team, region (one row per forecast rep)


HIERARCHY_LEVELS = level_names()  # the sales hierarchy (dbt var `hierarchy`), top to bottom
TREE = ("company", "region", "team", "rep")


def load_series(con: duckdb.DuckDBPyConnection | Any, levels: tuple[str, ...] = HIERARCHY_LEVELS) -> SeriesSet:
    """Complete months of every series; reps without a booking in the last ACTIVE_MONTHS months are left out."""
    df = con.execute(
        """
        select series_id, level, series_key, series_name, month_start as ds, bookings as y
        from marts.fct_bookings_monthly
        where is_complete
        order by series_id, month_start
        """
    ).df()
    if df.empty:
        return SeriesSet({}, pd.DataFrame(columns=["series_id", "level", "series_key", "series_name"]),
                         pd.DataFrame(columns=["rep", "team", "region"]))
    df["ds"] = pd.to_datetime(df["ds"])
    df["y"] = df["y"].astype(float)
    last = df["ds"].max()
    recent = df[df["ds"] > last - pd.DateOffset(months=ACTIVE_MONTHS)].groupby("series_id")["y"].sum()
    keep = set(recent[recent > 0].index)
    df = df[df["series_id"].isin(keep) & df["level"].isin(levels)]
    meta = df[["series_id", "level", "series_key", "series_name"]].drop_duplicates("series_id")
    reps = meta.loc[meta["level"] == "rep", "series_key"].tolist()
    mapping = con.execute(
        f"""
        select owner_id as rep, coalesce(cast(current_team_id as varchar), '{NO_TEAM}') as team,
               coalesce(current_region, 'Unassigned') as region
        from marts.fct_opportunities
        where status = 'won'
        group by 1, 2, 3
        """
    ).df()
    mapping = mapping[mapping["rep"].isin(reps)].drop_duplicates("rep")
    series = {sid: g[["ds", "y"]].reset_index(drop=True) for sid, g in df.groupby("series_id", sort=True)}
    return SeriesSet(series, meta.reset_index(drop=True), mapping.reset_index(drop=True))


def backtest_residuals(track: pd.DataFrame, s: SeriesSet) -> pd.DataFrame:
    """The published method's backtest errors per tree node, for MinT: rows level, node, ds, residual.

    One time index per (origin, month) of the track record (`is_backtest` rows of the choice). A node with no
    forecast at an origin (a rep hired after it) counts as forecasting 0: its residual is what it booked.
    """
    bt = track[track["is_backtest"] & track["is_selected"] & track["level"].isin(TREE)]
    if bt.empty:
        return pd.DataFrame(columns=["level", "node", "ds", "residual"])
    keys = s.meta.set_index("series_id")
    actual = {sid: g.set_index("ds")["y"] for sid, g in s.series.items()}
    times = bt[bt["level"] == "company"][["as_of_date", "period_start"]].drop_duplicates()
    nodes = s.meta.loc[s.meta["level"].isin(TREE), ["series_id", "level"]]  # every node, with a track or not
    grid = times.merge(nodes, how="cross").merge(bt[["series_id", "as_of_date", "period_start", "yhat"]],
                                                  on=["series_id", "as_of_date", "period_start"], how="left")
    grid["yhat"] = grid["yhat"].fillna(0.0)
    grid["actual"] = [float(actual[sid].get(pd.Timestamp(p), 0.0)) if sid in actual else 0.0
                      for sid, p in zip(grid["series_id"], grid["period_start"], strict=True)]
    grid["node"] = [("company" if lv == "company" else str(keys.loc[sid, "series_key"]))
                    for sid, lv in zip(grid["series_id"], grid["level"], strict=True)]
    grid["ds"] = grid["as_of_date"].astype(str) + "/" + grid["period_start"].astype(str)
    grid["residual"] = grid["actual"] - grid["yhat"]
    return grid[["level", "node", "ds", "residual"]]


def _reconcile(rows: pd.DataFrame, s: SeriesSet, residuals: pd.DataFrame | None = None) -> tuple[pd.DataFrame, str]:
    """Make rep, team, region and company add up; then scale segments to the company total.

    MinT-shrink (NIGHTLY_METHOD) with the covariance of the track record's errors (`backtest_residuals`);
    without enough of them (under 3 periods, or a node missing) structural WLS, which needs none.
    """
    from forecasting.reconcile import NIGHTLY_METHOD, NO_RESIDUALS_METHOD, reconcile

    tree = rows[rows["level"].isin(["company", "region", "team", "rep"])].copy()
    tree["node"] = np.where(tree["level"] == "company", "company", tree["series_key"])
    tree["ds"] = tree["period_start"]
    teams = set(s.mapping["team"])
    regions = set(s.mapping["region"])
    wanted = (
        (tree["level"] == "company")
        | ((tree["level"] == "region") & tree["node"].isin(regions))
        | ((tree["level"] == "team") & tree["node"].isin(teams))
        | ((tree["level"] == "rep") & tree["node"].isin(set(s.mapping["rep"])))
    )
    def run(base: pd.DataFrame, levels: tuple[str, ...]) -> tuple[pd.DataFrame, str]:
        if residuals is not None and residuals["ds"].nunique() >= 3:
            try:
                return reconcile(base, s.mapping, method=NIGHTLY_METHOD, residuals=residuals,
                                 levels=levels), NIGHTLY_METHOD
            except (ValueError, np.linalg.LinAlgError) as exc:
                if "sits under more than one" in str(exc):
                    raise
                log.warning("%s failed (%s); reconciling with %s", NIGHTLY_METHOD, exc, NO_RESIDUALS_METHOD)
        return reconcile(base, s.mapping, method=NO_RESIDUALS_METHOD, levels=levels), NO_RESIDUALS_METHOD

    try:
        rec, method = run(tree[wanted], ("team", "region"))
    except ValueError as exc:
        # a team spanning two regions (or a node without a forecast) breaks the tree: sum reps bottom-up
        # into teams and the company, and leave regions as forecast
        log.warning("reconciliation over rep > team > region failed (%s); reconciling rep > team only", exc)
        rec, used = run(tree[wanted & (tree["level"] != "region")], ("team",))
        method = f"{used} (rep > team > company; regions not reconciled)"
    rec = rec.drop(columns=["node", "ds"])
    out = pd.concat([rows[~rows.index.isin(tree[wanted].index)], rec], ignore_index=True)
    # segments split the same company total: scale them (and their bounds) to it, month by month
    company = out[out["level"] == "company"].set_index("period_start")["yhat"]
    seg = out["level"] == "segment"
    if seg.any() and not company.empty:
        totals = out[seg].groupby("period_start")["yhat"].transform("sum")
        factor = out.loc[seg, "period_start"].map(company) / totals.replace(0, np.nan)
        factor = factor.fillna(1.0)
        for col in ("yhat", *BOUNDS):
            out.loc[seg, col] = out.loc[seg, col] * factor
    return out, method


MAX_CHUNK_SERIES = 150  # a region with more series is split, so no mapped task runs for much longer than others
COMPANY_CHUNK = "company"  # the company and segment series (they do not belong to one region)


def chunk_name(region: str, part: int = 1, parts: int = 1) -> str:
    """`region=EMEA`, or `region=EMEA part 2 of 3` when a big region is split."""
    return f"region={region}" + (f" part {part} of {parts}" if parts > 1 else "")


def assign_chunks(s: SeriesSet, max_series: int = MAX_CHUNK_SERIES) -> dict[str, list[str]]:
    """Group series into work units for parallel workers: one per region (reps, teams and the region itself).

    The company and segment series form one more chunk. A region over `max_series` series is split in equal
    parts. Never one unit per rep: a task per series would spend more on scheduling than on fitting.
    """
    rep_region = dict(zip(s.mapping["rep"], s.mapping["region"], strict=True))
    team_region = s.mapping.drop_duplicates("team").set_index("team")["region"].to_dict()
    groups: dict[str, list[str]] = {}
    for sid, level, key in s.meta[["series_id", "level", "series_key"]].itertuples(index=False):
        if level in ("company", "segment"):
            region = None
        elif level == "region":
            region = key
        elif level == "team":
            region = team_region.get(key, "Unassigned")
        else:
            region = rep_region.get(key, "Unassigned")
        groups.setdefault(COMPANY_CHUNK if region is None else str(region), []).append(sid)
    chunks: dict[str, list[str]] = {}
    for group in sorted(groups, key=lambda g: (g != COMPANY_CHUNK, g)):
        ids = sorted(groups[group])
        if group == COMPANY_CHUNK:
            chunks[COMPANY_CHUNK] = ids
            continue
        parts = max(1, math.ceil(len(ids) / max_series))
        for i in range(parts):
            chunks[chunk_name(group, i + 1, parts)] = ids[i::parts]
    return chunks


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_=" else "_" for c in name)


def plan_forecast(con: duckdb.DuckDBPyConnection | Any, work_dir: Path, levels: tuple[str, ...] = HIERARCHY_LEVELS,
                  max_series: int = MAX_CHUNK_SERIES) -> list[str]:
    """Read every series from the marts once and write them with the chunk plan to `work_dir`.

    Returns the chunk names (empty when there are no closed bookings yet). Chunks then run anywhere that sees
    `work_dir` (Airflow mapped tasks), without opening the warehouse, which only one process may write.
    """
    s = load_series(con, tuple(levels))
    if work_dir.exists():
        shutil.rmtree(work_dir)  # a retried plan starts clean: no chunk result of an earlier attempt survives
    (work_dir / "chunks").mkdir(parents=True)
    chunks = assign_chunks(s, max_series) if s.series else {}
    frames = [g.assign(series_id=sid) for sid, g in s.series.items()]
    series = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["ds", "y", "series_id"])
    series.to_parquet(work_dir / "series.parquet", index=False)
    s.meta.to_parquet(work_dir / "meta.parquet", index=False)
    s.mapping.to_parquet(work_dir / "mapping.parquet", index=False)
    (work_dir / "plan.json").write_text(json.dumps({"levels": list(levels), "chunks": chunks}, indent=1),
                                        encoding="utf-8")
    return list(chunks)


def _read_plan(work_dir: Path) -> tuple[dict, SeriesSet]:
    plan = json.loads((work_dir / "plan.json").read_text(encoding="utf-8"))
    df = pd.read_parquet(work_dir / "series.parquet")
    df["ds"] = pd.to_datetime(df["ds"])
    series = {sid: g[["ds", "y"]].reset_index(drop=True) for sid, g in df.groupby("series_id", sort=True)}
    s = SeriesSet(series, pd.read_parquet(work_dir / "meta.parquet"), pd.read_parquet(work_dir / "mapping.parquet"))
    return plan, s


def save_prophet_models(models_dir: Path, series_id: str, model: str, fits: list[dict]) -> Path:
    """Keep the chosen Prophet fits of one series as Prophet's own JSON (never pickle), gzipped."""
    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / f"{_safe(series_id)}.json.gz"
    body = {"series_id": series_id, "model": model, "fits": fits}
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(body, fh)
    return path


def forecast_chunk(work_dir: Path, chunk: str, horizon: int = HORIZON, origins: int = ORIGINS,
                   processes: int | None = None, models_dir: Path | None = None, prophet_grid: str = "full",
                   cache_dir: Path | None = None, reuse: bool = True,
                   prophet_backend: str = DEFAULT_PROPHET_BACKEND) -> dict:
    """Forecast one chunk's series (a process pool over the cores) and write its rows beside the plan.

    The Prophet models chosen for each series are written to `models_dir` (if given) as Prophet JSON.
    With `cache_dir`, a series whose inputs are unchanged since a run that cached it is not fitted again
    (see `forecast_chunks`).
    """
    return forecast_chunks(work_dir, [chunk], horizon, origins, processes, models_dir, prophet_grid,
                           cache_dir, reuse, prophet_backend)[0]


CACHE_COLUMNS_DATES = ("period_start", "training_start", "training_end", "as_of_date")
_FIT_CODE = ("series.py", "metrics.py", "prophet_fit.py", "prophet_map.py", "methods.py", "intervals.py", "select.py",
             "pool.py", "backtest.py")  # the modules whose code decides a series' forecast
_FIT_LIBRARIES = ("prophet", "cmdstanpy", "statsforecast", "coreforecast", "statsmodels", "numpy", "pandas", "scipy")


def _fit_environment() -> bytes:
    """What besides a series' own history decides its forecast: our fitting code and the libraries' versions."""

    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in _FIT_CODE:
        h.update((here / name).read_bytes())
    h.update(METHODS_FILE.read_bytes())  # the method registry and the selection rule's settings
    for lib in _FIT_LIBRARIES:
        try:
            h.update(f"{lib}={version(lib)};".encode())
        except PackageNotFoundError:
            h.update(f"{lib}=none;".encode())
    return h.digest()


def fit_fingerprint(series_id: str, hist: pd.DataFrame, horizon: int, origins: int, prophet_grid: str,
                    keep_models: bool = False, environment: bytes | None = None,
                    prophet_backend: str = DEFAULT_PROPHET_BACKEND) -> str:
    """A key that changes whenever anything the series' forecast depends on changes.

    The forecast of a series is a deterministic function of its complete months (`ds`, `y`), the horizon,
    the backtest origins, the Prophet grid and backend, our fitting code and the libraries' versions; the key hashes
    exactly these (and the series id, which its kept Prophet JSON names, and whether that JSON is kept: the
    selection record names the file only then).
    """
    h = hashlib.sha256(environment if environment is not None else _fit_environment())
    h.update(json.dumps([series_id, horizon, origins, prophet_grid, keep_models, prophet_backend]).encode())
    h.update(pd.to_datetime(hist["ds"]).to_numpy(dtype="datetime64[ns]").astype("int64").tobytes())
    h.update(hist["y"].to_numpy(dtype="float64").tobytes())
    return h.hexdigest()


def _cache_get(cache_dir: Path, key: str) -> pd.DataFrame | None:
    path = cache_dir / f"{key}.parquet"
    if not path.exists():
        return None
    try:
        rows = pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # a torn or foreign file: fit the series again
        log.warning("forecast cache entry %s unreadable (%s); fitting again", path, exc)
        return None
    for col in CACHE_COLUMNS_DATES:
        rows[col] = pd.to_datetime(rows[col]).dt.date
    return rows


def _cache_put(cache_dir: Path, key: str, rows: pd.DataFrame, prophet_json: Path | None) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    if prophet_json is not None:
        tmp = cache_dir / f"{key}.json.gz.tmp"
        shutil.copyfile(prophet_json, tmp)
        tmp.replace(cache_dir / f"{key}.json.gz")
    tmp = cache_dir / f"{key}.parquet.tmp"
    rows.to_parquet(tmp, index=False)
    tmp.replace(cache_dir / f"{key}.parquet")  # written last: an entry is whole or absent


def series_rows(series_id: str, hist: pd.DataFrame, res: Any, record: dict[str, Any]) -> pd.DataFrame:
    """One series' rows for fct_forecasts: the choice, Prophet's own forecast, and the backtest track record.

    The choice's rows are the published ones (`is_selected`); the primary Prophet's forecast is stored beside
    it under its own model name (unless Prophet is the choice) so the accuracy mart scores both; the backtest's
    out-of-sample forecasts of both at each origin are `is_backtest` rows with the origin as their as-of date
    (live rows get the run's as-of date in `assemble_forecasts`).
    """
    selected = res.selection.model
    start = hist["ds"].min().date()
    parts = []
    live = {selected: res.forecast, **res.selection.companions}
    for model, fc in live.items():
        part = fc.copy()
        part["horizon"] = np.arange(1, len(part) + 1)
        part["training_end"] = hist["ds"].max()
        part["as_of_date"] = pd.NaT
        part["model"] = model
        part["is_backtest"] = False
        parts.append(part)
    if len(res.track):
        parts.append(res.track.assign(is_backtest=True))
    rows = pd.concat(parts, ignore_index=True)
    rows["series_id"] = series_id
    rows["period_start"] = pd.to_datetime(rows["ds"]).dt.date
    rows["training_start"] = start
    rows["training_end"] = pd.to_datetime(rows["training_end"]).dt.date
    rows["as_of_date"] = pd.to_datetime(rows["as_of_date"]).dt.date
    rows["is_selected"] = rows["model"] == selected
    rows["_selection"] = json.dumps(record, sort_keys=True, default=str)
    return rows.drop(columns=["ds"])


def forecast_chunks(work_dir: Path, chunks: list[str], horizon: int = HORIZON, origins: int = ORIGINS,
                    processes: int | None = None, models_dir: Path | None = None,
                    prophet_grid: str = "full", cache_dir: Path | None = None, reuse: bool = True,
                    prophet_backend: str = DEFAULT_PROPHET_BACKEND) -> list[dict]:
    """`forecast_chunk` for several chunks in one process pool (one pool start-up, not one per chunk).

    Forecasts use complete months only, so on most nights most series are exactly what they were the night
    before: with `cache_dir`, each series' result (rows, selection record, Prophet JSON) is kept under its
    `fit_fingerprint`, and a series whose key is already there is taken from it instead of fitted, which
    gives the same rows as fitting it (fits are deterministic). `reuse=False` (a full refresh) fits every
    series and refreshes the cache. The keys each chunk used are written beside its rows, so the run can
    prune what no series needs any more (`prune_forecast_cache`).
    """
    from forecasting.pool import forecast_many

    plan, s = _read_plan(work_dir)
    missing = [c for c in chunks if c not in plan["chunks"]]
    if missing:
        raise KeyError(f"chunk(s) {missing} not in the forecast plan {work_dir / 'plan.json'}")
    ids = [sid for c in chunks for sid in plan["chunks"][c]]
    keys: dict[str, str] = {}
    frames: dict[str, pd.DataFrame] = {}
    if cache_dir is not None:
        environment = _fit_environment()
        for sid in ids:
            keys[sid] = fit_fingerprint(sid, s.series[sid], horizon, origins, prophet_grid, models_dir is not None,
                                        environment, prophet_backend)
            cached = _cache_get(cache_dir, keys[sid]) if reuse else None
            if cached is not None:
                frames[sid] = cached
                kept = cache_dir / f"{keys[sid]}.json.gz"
                if models_dir is not None and kept.exists():
                    models_dir.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(kept, models_dir / f"{_safe(sid)}.json.gz")
    todo = [sid for sid in ids if sid not in frames]
    results = forecast_many({sid: s.series[sid] for sid in todo}, horizon=horizon, origins=origins,
                            processes=processes, prophet_grid=prophet_grid,
                            prophet_backend=prophet_backend) if todo else {}
    for sid, res in results.items():
        record = res.selection.as_record()
        if models_dir is not None and res.selection.prophet_models:
            path = save_prophet_models(models_dir, sid, res.selection.model, res.selection.prophet_models)
            record["prophet_json"] = path.name
        frames[sid] = series_rows(sid, s.series[sid], res, record)
        if cache_dir is not None:
            kept = models_dir / record["prophet_json"] if models_dir is not None and "prophet_json" in record else None
            _cache_put(cache_dir, keys[sid], frames[sid], kept)
    done = []
    for chunk in chunks:
        rows = pd.concat([frames[sid] for sid in plan["chunks"][chunk]], ignore_index=True)
        out = work_dir / "chunks" / f"{_safe(chunk)}.parquet"
        fitted = sum(1 for sid in plan["chunks"][chunk] if sid in results)
        cache_use = {"keys": [keys[sid] for sid in plan["chunks"][chunk] if sid in keys], "fitted": fitted,
                     "reused": len(plan["chunks"][chunk]) - fitted}
        (work_dir / "chunks" / f"{_safe(chunk)}.cache.json").write_text(json.dumps(cache_use), encoding="utf-8")
        tmp = out.with_suffix(".tmp")
        rows.to_parquet(tmp, index=False)
        tmp.replace(out)  # a chunk's result appears whole or not at all
        done.append({"chunk": chunk, "series": len(plan["chunks"][chunk]), "fitted": fitted,
                     "reused": cache_use["reused"],
                     "models": rows[rows["is_selected"] & ~rows["is_backtest"]].groupby("model")["series_id"]
                     .nunique().to_dict()})
    return done


def _cache_use(work_dir: Path) -> list[dict]:
    plan = json.loads((work_dir / "plan.json").read_text(encoding="utf-8"))
    files = (work_dir / "chunks" / f"{_safe(chunk)}.cache.json" for chunk in plan["chunks"])
    return [json.loads(f.read_text(encoding="utf-8")) for f in files if f.exists()]


def fitted_and_reused(work_dir: Path) -> dict[str, int]:
    """How many series this run fitted and how many it took unchanged from the cache."""
    use = _cache_use(work_dir)
    return {"fitted": sum(u["fitted"] for u in use), "reused": sum(u["reused"] for u in use)}


def prune_forecast_cache(work_dir: Path, cache_dir: Path) -> int:
    """Remove cache entries no chunk of this run used (last month's fits); returns how many were removed.

    Called once the run's forecasts are stored. Runs of one warehouse never overlap, so every entry a later
    night can reuse is one this run used.
    """
    if not cache_dir.is_dir():
        return 0
    used = {key for u in _cache_use(work_dir) for key in u["keys"]}
    removed = 0
    for path in cache_dir.iterdir():
        if path.name.split(".", 1)[0] not in used:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def assemble_forecasts(work_dir: Path, as_of: date, run_id: str) -> pd.DataFrame:
    """Every chunk's rows, reconciled so the hierarchy adds up: the rows for `forecasts.fct_forecasts`."""
    plan, s = _read_plan(work_dir)
    if not plan["chunks"]:
        return pd.DataFrame()
    frames = []
    for chunk in plan["chunks"]:
        path = work_dir / "chunks" / f"{_safe(chunk)}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"forecast chunk {chunk!r} has no result ({path}): did its task run?")
        frames.append(pd.read_parquet(path))
    rows = pd.concat(frames, ignore_index=True)
    for col in CACHE_COLUMNS_DATES:
        rows[col] = pd.to_datetime(rows[col]).dt.date
    rows = rows.merge(s.meta, on="series_id", how="left")
    levels = tuple(plan["levels"])
    published = rows["is_selected"] & ~rows["is_backtest"]
    if set(TREE) <= set(levels):
        # only tonight's chosen forecasts are reconciled; Prophet's own and the backtest rows are each
        # series' own forecast, as they were scored
        rec, method = _reconcile(rows[published].reset_index(drop=True), s, backtest_residuals(rows, s))
        rows = pd.concat([rec.assign(_reconciled=True), rows[~published].assign(_reconciled=False)],
                         ignore_index=True)
    else:
        method = None  # without every level of the tree there is nothing to add up
        rows["_reconciled"] = False
    for col in ("yhat", *BOUNDS):
        rows[col] = rows[col].clip(lower=0)
    rows["yhat_lower_80"] = np.minimum(rows["yhat_lower_80"], rows["yhat"])
    rows["yhat_lower_95"] = np.minimum(rows["yhat_lower_95"], rows["yhat_lower_80"])
    rows["yhat_upper_80"] = np.maximum(rows["yhat_upper_80"], rows["yhat"])
    rows["yhat_upper_95"] = np.maximum(rows["yhat_upper_95"], rows["yhat_upper_80"])
    reconciled = rows["_reconciled"] & rows["level"].isin(HIERARCHY_LEVELS) & (method is not None)
    rows["model_params"] = [
        json.dumps({"selection": json.loads(sel), "reconciliation": method if rec else None}, sort_keys=True)
        for sel, rec in zip(rows["_selection"], reconciled, strict=True)
    ]
    rows["as_of_date"] = [as_of if not bt else d for d, bt in zip(rows["as_of_date"], rows["is_backtest"], strict=True)]
    rows["run_id"] = run_id
    rows["code_version"] = code_version()
    rows["is_selected"] = rows["is_selected"].astype(bool)
    rows["is_backtest"] = rows["is_backtest"].astype(bool)
    order = ["is_backtest", "series_id", "as_of_date", "model", "period_start"]
    return rows[list(FORECAST_COLUMNS)].sort_values(order).reset_index(drop=True)


def forecast_all(
    con: duckdb.DuckDBPyConnection,
    as_of: date,
    run_id: str,
    horizon: int = HORIZON,
    origins: int = ORIGINS,
    processes: int | None = None,
    levels: tuple[str, ...] = HIERARCHY_LEVELS,
    work_dir: Path | None = None,
    models_dir: Path | None = None,
    prophet_grid: str = "full",
    prophet_backend: str = DEFAULT_PROPHET_BACKEND,
) -> pd.DataFrame:
    """Plan, forecast every chunk here, and assemble: the one-process form of the Airflow task group."""
    with tempfile.TemporaryDirectory(prefix="salesos-forecast-plan-") as tmp:
        work = work_dir or Path(tmp) / "work"
        chunks = plan_forecast(con, work, tuple(levels))
        if chunks:
            forecast_chunks(work, chunks, horizon, origins, processes, models_dir, prophet_grid,
                            prophet_backend=prophet_backend)
        return assemble_forecasts(work, as_of, run_id)


CHARTS_PER_PROCESS = 16  # below this a process's start (matplotlib's import, ~1 s) costs more than it saves


def _draw_chart(task: tuple[str, pd.DataFrame, pd.DataFrame, str]) -> str:
    """One PNG: the last three years of actuals, the forecast and both intervals (in a worker or here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name, h, fc, path = task
    x = pd.to_datetime(fc["period_start"])
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(h["month_start"], h["bookings"], color="black", lw=1.5, label="actual bookings")
    ax.fill_between(x, fc["yhat_lower_95"], fc["yhat_upper_95"], color="tab:blue", alpha=0.15, label="95%")
    ax.fill_between(x, fc["yhat_lower_80"], fc["yhat_upper_80"], color="tab:blue", alpha=0.3, label="80%")
    ax.plot(x, fc["yhat"], color="tab:blue", lw=2, label=f"forecast ({fc['model'].iloc[0]})")
    ax.set_title(f"{name}: monthly bookings, forecast as of {fc['as_of_date'].iloc[0]}")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_charts(con: duckdb.DuckDBPyConnection | Any, rows: pd.DataFrame, out_dir: Path,
                 levels: tuple[str, ...] = ("company", "region", "team"), processes: int | None = None) -> list[Path]:
    """One PNG per company, region and team: the last three years of actuals, the forecast, both intervals.

    Drawn in a process pool when there are enough charts (67 at scale M: 9.25 s in one process, 5.14 s in two); the
    files are the same either way.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from forecasting.pool import main_script_hidden

    out_dir.mkdir(parents=True, exist_ok=True)
    if "is_selected" in rows.columns:  # the published forecast only: not Prophet's own, not the track record
        rows = rows[rows["is_selected"] & ~rows["is_backtest"]]
    history = con.execute(
        "select series_id, series_name, month_start, bookings from marts.fct_bookings_monthly where is_complete"
    ).df()
    history["month_start"] = pd.to_datetime(history["month_start"])
    history["bookings"] = history["bookings"].astype(float)  # Postgres returns numeric as Decimal
    tasks = []
    for sid, fc in rows[rows["level"].isin(levels)].groupby("series_id", sort=True):
        h = history[history["series_id"] == sid].sort_values("month_start").tail(36)
        name = h["series_name"].iloc[0] if len(h) and h["series_name"].iloc[0] else sid
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in sid)
        tasks.append((name, h, fc, str(out_dir / f"{safe}.png")))
    n_proc = processes if processes is not None else (os.cpu_count() or 1)
    n_proc = max(1, min(n_proc, len(tasks) // CHARTS_PER_PROCESS))
    if n_proc == 1:
        return [Path(_draw_chart(t)) for t in tasks]
    with main_script_hidden(), ProcessPoolExecutor(max_workers=n_proc, mp_context=get_context("spawn")) as pool:
        return [Path(p) for p in pool.map(_draw_chart, tasks, chunksize=max(1, len(tasks) // (n_proc * 4)))]


# ------------------------------------------------------------------------------------------ the nightly step


@dataclass(frozen=True)
class ForecastStep:
    """Where one run's forecast step works and what it runs with: what the pipeline's forecast tasks share.

    `work_dir` (in the run's build folder) holds the plan and the chunks' rows; `models_dir` and `charts_dir`
    (in the run folder) the kept Prophet JSON and the charts; `cache_dir` (beside the warehouse, where every
    forecast worker sees it) the unchanged series' forecasts between nights, None when the settings turn
    reuse off; `reuse` is False on a full refresh, which fits every series again and rewrites the cache.
    """

    work_dir: Path
    models_dir: Path
    charts_dir: Path
    cache_dir: Path | None
    reuse: bool
    horizon: int = HORIZON
    origins: int = ORIGINS
    prophet_grid: str = "primary"
    levels: tuple[str, ...] = HIERARCHY_LEVELS
    prophet_backend: str = DEFAULT_PROPHET_BACKEND

    @classmethod
    def for_run(cls, settings: Any, build_dir: Path, run_dir: Path, data_dir: Path, *,
                full_refresh: bool) -> ForecastStep:
        """The step of one run: its folders, the settings' horizon, origins, grid and levels, the cache policy."""
        cache = data_dir / "forecast_cache" if settings.forecast_reuse_unchanged else None
        return cls(work_dir=build_dir / "forecast", models_dir=run_dir / "forecast_models",
                   charts_dir=run_dir / "forecast_charts", cache_dir=cache,
                   reuse=cache is not None and not full_refresh, horizon=settings.forecast_horizon,
                   origins=settings.forecast_origins, prophet_grid=settings.forecast_prophet_grid,
                   levels=tuple(settings.forecast_levels), prophet_backend=settings.forecast_prophet_backend)

    def chunk_options(self) -> dict[str, Any]:
        """The keyword arguments of `forecast_chunk` for this step (what a worker elsewhere, a Spark task, needs)."""
        return {"horizon": self.horizon, "origins": self.origins, "models_dir": self.models_dir,
                "prophet_grid": self.prophet_grid, "cache_dir": self.cache_dir, "reuse": self.reuse,
                "prophet_backend": self.prophet_backend}


def plan(con: duckdb.DuckDBPyConnection | Any, step: ForecastStep) -> list[str]:
    """Read the series from the marts and write the chunk plan; a retried plan keeps no model of an earlier try."""
    chunks = plan_forecast(con, step.work_dir, step.levels)
    shutil.rmtree(step.models_dir, ignore_errors=True)
    return chunks


def run_chunks(step: ForecastStep, chunks: list[str], processes: int | None = None) -> list[dict]:
    """Forecast `chunks` of the plan in one process pool, reusing the cached series the policy allows."""
    return forecast_chunks(step.work_dir, chunks, step.horizon, step.origins, processes, step.models_dir,
                           step.prophet_grid, step.cache_dir, step.reuse, step.prophet_backend)


@dataclass
class Stored:
    """What `store` wrote: the run's rows (empty when nothing closed yet) and the track record it added."""

    rows: pd.DataFrame
    written: int = 0
    new_track: int = 0
    checks: int = 0


def _backtest_rows(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute(f"select count(*) from {FORECAST_TABLE} where is_backtest").fetchall()[0][0])


def store(con: duckdb.DuckDBPyConnection, step: ForecastStep, as_of: date, run_id: str,
          check: Any = None) -> Stored:
    """Reconcile the chunks' rows, check them (`check(rows)`, e.g. the GX suite; it raises on a failure), append
    them to the forecast table, and prune the cache entries no series of this run used."""
    rows = assemble_forecasts(step.work_dir, as_of, run_id)
    if rows.empty:
        return Stored(rows)
    checks = check(rows).expectations if check is not None else 0
    track_before = _backtest_rows(con) if _has_table(con) else 0
    written = store_forecasts(con, rows)
    new_track = _backtest_rows(con) - track_before
    if step.cache_dir is not None:
        prune_forecast_cache(step.work_dir, step.cache_dir)
    return Stored(rows, written, new_track, checks)


def _has_table(con: duckdb.DuckDBPyConnection) -> bool:
    schema, table = FORECAST_TABLE.split(".")
    return bool(con.execute("select count(*) from information_schema.tables where table_schema = ? and "
                            "table_name = ?", [schema, table]).fetchall()[0][0])


def charts(con: duckdb.DuckDBPyConnection | Any, step: ForecastStep, rows: pd.DataFrame) -> list[Path]:
    """The report's charts of tonight's published forecasts (company, regions, teams)."""
    published = rows["is_selected"] & ~rows["is_backtest"]
    return write_charts(con, rows[published], step.charts_dir)


def summary(step: ForecastStep, stored: Stored, drawn: list[Path]) -> dict[str, Any]:
    """The step's result record (forecast.json): series, rows, models, what was fitted and reused."""
    rows = stored.rows
    if rows.empty:
        return {"series": 0, "rows": 0, "checks": 0, "models": {}}
    published = rows["is_selected"] & ~rows["is_backtest"]
    return {
        "series": int(rows["series_id"].nunique()),
        # series fitted tonight, and series whose inputs had not changed, taken from the cache
        **fitted_and_reused(step.work_dir),
        "rows": stored.written,
        # tonight's published forecasts, Prophet's own beside them, and the backtest track record kept
        "selected_rows": int(published.sum()),
        "prophet_rows": int((~rows["is_selected"] & ~rows["is_backtest"]).sum()),
        "backtest_rows": int(rows["is_backtest"].sum()),
        "backtest_rows_new": int(stored.new_track),  # origins no earlier night had stored: forecast_marts rescores
        "checks": stored.checks,
        "series_per_level": rows[published].groupby("level")["series_id"].nunique().to_dict(),
        "models": rows[published].groupby("model")["series_id"].nunique().to_dict(),
        "charts": str(step.charts_dir) if drawn else None,
        "prophet_models": str(step.models_dir) if step.models_dir.exists() else None,
    }
