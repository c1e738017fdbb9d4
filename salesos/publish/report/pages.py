"""What each page of the nightly report shows, read from the published marts and forecast tables.

Every number comes from the mart that defines it (a rate over several periods or reps is recomputed from
its numerator and denominator, never averaged); this module only picks rows and lays them out. Each page is
a dict the template (templates/page.html.j2) renders: sections of tiles, charts, tables and links.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from itertools import count
from typing import Any, ClassVar

import pandas as pd

from salesos.hierarchy import hierarchy
from salesos.publish.report import charts
from salesos.publish.report.money import Money, number, pct

MONTHS_SHOWN = 12
QUARTERS_SHOWN = 8
ATTENTION_ROWS = 300


@dataclass(frozen=True)
class ReportContext:
    """What a report is about: its date and run, the currency and the rules that flag a deal."""

    as_of: date
    run_id: str
    version: str | None
    currency: str
    warehouse: str
    stale_days: int
    pushed_times: int
    data_docs: str | None = None  # a URL of the run's Data Docs index, or None
    warnings: tuple[str, ...] = ()
    build: dict[str, Any] = field(default_factory=dict)  # the run's dbt build result (tests passed, warned)


@dataclass
class Page:
    """One HTML file: its path in the report, its nav section, title and content."""

    path: str
    section: str
    title: str
    intro: str = ""
    sections: list[dict[str, Any]] = field(default_factory=list)
    charts: dict[str, Any] = field(default_factory=dict)


NAV = [("overview", "index.html", "Company"), ("pipeline", "pipeline.html", "Pipeline"),
       ("teams", "teams.html", "Teams"), ("reps", "reps.html", "Reps"),
       ("accuracy", "accuracy.html", "Forecast accuracy"), ("quality", "quality.html", "Data quality")]


def _level(index: int) -> str:
    """A level's name from the hierarchy (salesos/hierarchy.py), never written here by hand."""
    return hierarchy().levels[index].level


def level_named(name: str) -> str:
    names = hierarchy().names
    if name not in names:
        raise ValueError(f"the hierarchy has no level {name!r} (levels: {', '.join(names)})")
    return name


def file_name(key: Any) -> str:
    """A member's page name: its key when that is a plain name, else a readable part and a hash."""
    text = str(key)
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,80}", text):
        return text
    return (re.sub(r"[^A-Za-z0-9_-]+", "-", text)[:40].strip("-") or "member") + "-" + \
        hashlib.sha256(text.encode()).hexdigest()[:8]


def _v(x: Any) -> Any:
    """A JSON-safe scalar (NaN and NaT to None, dates to ISO strings)."""
    kind = type(x)
    if kind is str or kind is int or kind is bool or x is None:
        return x
    if kind is float:
        return None if math.isnan(x) else x
    if x is pd.NaT:
        return None
    if isinstance(x, pd.Timestamp):
        return x.date().isoformat()
    if isinstance(x, date):
        return x.isoformat()
    if hasattr(x, "item"):
        return _v(x.item())
    if isinstance(x, Decimal):
        return float(x)
    return x


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _v(v) for k, v in row.items()} for row in df.to_dict("records")]


def _num(x: Any) -> float | None:
    x = _v(x)
    return None if x is None else float(x)


def _ratio(num: Any, den: Any) -> float | None:
    """numerator / denominator, None unless the denominator is positive (the marts' ratio() rule)."""
    n, d = _num(num), _num(den)
    return None if n is None or d is None or d <= 0 else n / d


class Cells:
    """Table cells: the text shown, the value sorted on, and a link."""

    def __init__(self, money: Money) -> None:
        self.money = money

    def money_cell(self, x: Any) -> dict[str, Any]:
        v = _num(x)
        return {"text": self.money.full(v), "sort": "" if v is None else v, "numeric": True}

    def pct_cell(self, x: Any, digits: int = 0, pace: bool = False) -> dict[str, Any]:
        v = _num(x)
        cell = {"text": pct(v, digits), "sort": "" if v is None else v, "numeric": True}
        if pace and v is not None:  # below 1: behind a straight-line path (marked by a sign, not only colour)
            cell["text"] = ("▼ " if v < 1 else "▲ ") + pct(v, digits)
        return cell

    @staticmethod
    def num_cell(x: Any, digits: int = 0) -> dict[str, Any]:
        v = _num(x)
        return {"text": number(v, digits), "sort": "" if v is None else v, "numeric": True}

    @staticmethod
    def text_cell(x: Any, href: str | None = None) -> dict[str, Any]:
        v = _v(x)
        return {"text": "–" if v is None else str(v), "sort": None, "href": href}

    @staticmethod
    def date_cell(x: Any) -> dict[str, Any]:
        v = _v(x)
        return {"text": v or "–", "sort": v or "", "numeric": False}


def col(label: str, numeric: bool = False) -> dict[str, Any]:
    return {"label": label, "numeric": numeric}


class Builder:
    """Builds every page from one read-only connection to the published warehouse."""

    def __init__(self, con: Any, ctx: ReportContext) -> None:
        self.con = con
        self.ctx = ctx
        self.money = Money(ctx.currency)
        self.cells = Cells(self.money)
        self._ids = count(1)
        self.company, self.region, self.team, self.rep = (level_named(n) for n in ("company", "region", "team", "rep"))
        self.company_key = hierarchy().company_key

    # ------------------------------------------------------------ helpers

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """A query's rows as dicts of plain values (NaN as None, dates as ISO strings): cheap to filter in Python.

        Read with fetchall where the connection has it (DuckDB): a pandas frame per small query cost more
        than the query itself; other readers (salesos.warehouse.postgres.PgReader) give a frame.
        """
        result = self.con.execute(sql, params or [])
        if hasattr(result, "fetchall") and getattr(result, "description", None):
            names = [d[0] for d in result.description]
            return [{n: _v(v) for n, v in zip(names, row, strict=True)} for row in result.fetchall()]
        return _records(result.df())

    def q(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        rows = self.rows(sql, params)
        if rows:
            return pd.DataFrame(rows)
        result = self.con.execute(f"select * from ({sql}) as q limit 0", params or [])  # the columns of no rows
        names = [d[0] for d in result.description] if getattr(result, "description", None) else list(result.df())
        return pd.DataFrame(columns=names)

    def chart(self, page: Page, spec: dict[str, Any], title: str, note: str = "") -> dict[str, Any]:
        chart_id = f"chart-{next(self._ids)}"
        page.charts[chart_id] = spec
        return {"kind": "chart", "id": chart_id, "title": title, "note": note}

    @staticmethod
    def empty(title: str, text: str) -> dict[str, Any]:
        return {"kind": "empty", "title": title, "text": text}

    def tile(self, label: str, value: str, sub: str = "") -> dict[str, Any]:
        return {"label": label, "value": value, "sub": sub}

    @property
    def attainment_index(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """mart_quota_attainment read once, by (level, period_type), each list oldest period first."""
        if not hasattr(self, "_attainment"):
            index: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for r in self.rows("select * from marts.mart_quota_attainment order by period_start"):
                index.setdefault((r["level"], r["period_type"]), []).append(r)
            self._attainment = index
        return self._attainment

    def periods(self, level: str, level_id: str | None, period_type: str, last: int) -> list[dict[str, Any]]:
        """The last `last` fiscal periods of one member of mart_quota_attainment, oldest first."""
        rows = [r for r in self.attainment_index.get((level, period_type), [])
                if level_id is None or r["level_id"] == level_id]
        return rows[-last:]

    def current(self, level: str, period_type: str) -> list[dict[str, Any]]:
        """Every member's row of the fiscal period that holds as_of."""
        cache = self.__dict__.setdefault("_current", {})
        if (level, period_type) not in cache:
            day = self.ctx.as_of.isoformat()
            cache[level, period_type] = [r for r in self.attainment_index.get((level, period_type), [])
                                         if r["period_start"] <= day <= r["period_end"]]
        return cache[level, period_type]

    @staticmethod
    def period_label(row: dict[str, Any], period_type: str) -> str:
        start = pd.Timestamp(row["period_start"])
        if period_type == "month":
            return start.strftime("%b %Y")
        if period_type == "quarter":
            return f"FY{int(row['fiscal_year'])} Q{int(row['fiscal_quarter'])}"
        return f"FY{int(row['fiscal_year'])}"

    def fiscal_label(self, day: Any, period_type: str) -> str:
        """'Oct 2026' for a month, 'FY2027 Q3' for the fiscal quarter that starts on `day` (marts.dim_dates)."""
        if period_type == "month":
            return pd.Timestamp(day).strftime("%b %Y")
        row = self.q("select fiscal_year, fiscal_quarter from marts.dim_dates where date_day = ?", [_v(day)])
        if row.empty:
            return f"quarter from {_v(day)}"
        return self.period_label(row.to_dict("records")[0] | {"period_start": day}, "quarter")

    def attainment_chart(self, page: Page, rows: list[dict[str, Any]], period_type: str, title: str) -> dict[str, Any]:
        if not rows:
            return self.empty(title, "No quota or bookings in these periods yet.")
        values = [{"period": self.period_label(r, period_type), "period_start": _v(r["period_start"]),
                   "booked_amount": _num(r["booked_amount"]), "quota_amount": _num(r["quota_amount"]),
                   "attainment": _num(r["attainment"])} for r in rows]
        label = {"month": "Fiscal month", "quarter": "Fiscal quarter", "year": "Fiscal year"}[period_type]
        return self.chart(page, charts.bookings_vs_quota(values, label), title,
                          "Bars: booked (won, in the reporting currency); dashed line with diamonds: quota; "
                          "the label on each bar: attainment.")

    def kpi_tiles(self, rows: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
        """Booked, attainment and pace of the current month, quarter and year; coverage of the quarter."""
        tiles = []
        for name, row in rows.items():
            if row is None:
                tiles.append(self.tile(f"{name}: booked", "–", "no quota or bookings"))
                continue
            tiles.append(self.tile(f"{name}: booked", self.money.short(_num(row["booked_amount"])),
                                   f"of {self.money.short(_num(row['quota_amount']))} quota"))
            pace = _num(row["pace"])
            where = "behind" if pace is not None and pace < 1 else "on or ahead of"
            tiles.append(self.tile(f"{name}: attainment", pct(_num(row["attainment"])),
                                   f"pace {pct(pace)} ({where} a straight line), "
                                   f"{pct(_num(row['elapsed_share']))} of the period gone"
                                   if pace is not None else "no quota"))
        quarter = rows.get("Quarter")
        if quarter is not None:
            coverage, remaining = _num(quarter["pipeline_coverage"]), _num(quarter["remaining_quota_amount"])
            shown = (f"{number(coverage, 2)}x" if coverage is not None
                     else "quota met" if remaining is not None and remaining <= 0 else "–")
            tiles.append(self.tile("Quarter: pipeline coverage", shown,
                                   f"{self.money.short(_num(quarter['open_pipeline_amount']))} open, closing this "
                                   f"quarter, against {self.money.short(_num(quarter['remaining_quota_amount']))} "
                                   "quota still to book"))
        return {"kind": "tiles", "tiles": tiles}

    def member_current(self, level: str, level_id: str | None) -> dict[str, dict[str, Any] | None]:
        out = {}
        for name, period_type in (("Month", "month"), ("Quarter", "quarter"), ("Year", "year")):
            out[name] = next((r for r in self.current(level, period_type)
                              if level_id is None or r["level_id"] == level_id), None)
        return out

    # ------------------------------------------------------------ company overview

    def overview(self) -> Page:
        page = Page("index.html", "overview", "Company overview",
                    f"Bookings against quota, pace and pipeline coverage as of {self.ctx.as_of}, the bookings "
                    "forecast with its intervals and track record, and the in-quarter projection.")
        current = self.member_current(self.company, self.company_key)
        page.sections.append({"title": "This month, quarter and year", "blocks": [self.kpi_tiles(current)]})
        months = self.periods(self.company, self.company_key, "month", MONTHS_SHOWN)
        quarters = self.periods(self.company, self.company_key, "quarter", QUARTERS_SHOWN)
        page.sections.append({"title": "Bookings against quota", "grid": True, "blocks": [
            self.attainment_chart(page, months, "month", f"By fiscal month (last {MONTHS_SHOWN})"),
            self.attainment_chart(page, quarters, "quarter", f"By fiscal quarter (last {QUARTERS_SHOWN})"),
        ]})
        page.sections.append({"title": "Attainment, pace and coverage by region (this quarter)",
                              "blocks": [self.members_table(self.region, "quarter", link=None)]})
        page.sections.append(self.forecast_section(page))
        page.sections.append(self.projection_section(page))
        return page

    def members_table(self, level: str, period_type: str, link: str | None) -> dict[str, Any]:
        members = sorted(self.current(level, period_type), key=lambda r: -(r["attainment"] or -1e9))
        c = self.cells
        rows = []
        for r in members:
            name = r["team_name"] if level == self.team else r["region"] if level == self.region else r["level_id"]
            href = f"{link}/{file_name(r['level_id'])}.html" if link else None
            rows.append([c.text_cell(name, href), c.money_cell(r["quota_amount"]), c.money_cell(r["booked_amount"]),
                         c.pct_cell(r["attainment"]), c.pct_cell(r["pace"], pace=True),
                         c.money_cell(r["gap_to_quota"]), c.money_cell(r["open_pipeline_amount"]),
                         c.num_cell(r["pipeline_coverage"], 2)])
        return {"kind": "table", "columns": [
            col(level.capitalize()), col("Quota", True), col("Booked", True), col("Attainment", True),
            col("Pace", True), col("Gap to quota", True), col("Open pipeline closing in period", True),
            col("Coverage (x)", True)], "rows": rows,
            "note": "Pace = attainment / share of the period elapsed (▼ behind a straight-line path to quota, "
                    "▲ on or ahead). Coverage = open pipeline closing in the period / quota still to book (– once "
                    "the quota is met)."}

    def forecast_section(self, page: Page) -> dict[str, Any]:
        series_id = f"{self.company}:{self.company_key}"
        actual = self.q("select month_start, bookings from marts.fct_bookings_monthly where series_id = ? "
                        "and is_complete order by month_start desc limit 24", [series_id]).iloc[::-1]
        latest = self.q("select max(as_of_date) as d from forecasts.fct_forecasts where is_selected "
                        "and not is_backtest and as_of_date <= ?", [self.ctx.as_of])["d"].iloc[0]
        blocks: list[dict[str, Any]] = []
        if _v(latest) is None:
            blocks.append(self.empty("Bookings forecast", "No forecast has been published yet."))
            return {"title": "Bookings forecast", "blocks": blocks}
        fc = self.q("select period_start, yhat, yhat_lower_80, yhat_upper_80, yhat_lower_95, yhat_upper_95, model "
                    "from forecasts.fct_forecasts where is_selected and not is_backtest and as_of_date = ? "
                    "and series_id = ? order by period_start", [latest, series_id])
        values = [{"month": _v(r["month_start"]), "kind": "Actual", "value": _num(r["bookings"])}
                  for r in actual.to_dict("records")]
        if values and not fc.empty:  # the forecast line starts from the last actual month, so the two join
            last = values[-1]
            values.append({"month": last["month"], "kind": "Forecast", "value": last["value"],
                           **{k: last["value"] for k in ("lower_80", "upper_80", "lower_95", "upper_95")}})
        values += [{"month": _v(r["period_start"]), "kind": "Forecast", "value": _num(r["yhat"]),
                    "lower_80": _num(r["yhat_lower_80"]), "upper_80": _num(r["yhat_upper_80"]),
                    "lower_95": _num(r["yhat_lower_95"]), "upper_95": _num(r["yhat_upper_95"])}
                   for r in fc.to_dict("records")]
        blocks.append(self.chart(page, charts.forecast_band(values), "Monthly bookings: actual and forecast",
                                 f"Solid line with circles: actual bookings by calendar month; dashed line with "
                                 f"squares: the forecast published on {_v(latest)}; darker band: 80% interval, "
                                 "lighter band: 95% interval."))
        c = self.cells
        rows = [[c.date_cell(r["period_start"]), c.money_cell(r["yhat"]), c.money_cell(r["yhat_lower_80"]),
                 c.money_cell(r["yhat_upper_80"]), c.money_cell(r["yhat_lower_95"]), c.money_cell(r["yhat_upper_95"])]
                for r in fc.to_dict("records")]
        blocks.append({"kind": "table", "title": "The forecast, month by month", "columns": [
            col("Month"), col("Forecast", True), col("80% from", True), col("80% to", True), col("95% from", True),
            col("95% to", True)], "rows": rows,
            "note": f"Method: {fc['model'].iloc[0] if not fc.empty else '–'} (chosen per series by the backtest)."})
        blocks.append(self.track_record(page, series_id))
        return {"title": "Bookings forecast", "grid": True, "blocks": blocks}

    def track_record(self, page: Page, series_id: str) -> dict[str, Any]:
        """Past published forecasts (and the backtest's) one month ahead against what was booked."""
        df = self.q("select period_start, min(forecast) as forecast, min(actual) as actual, "
                    "min(lower_80) as lower_80, min(upper_80) as upper_80 "
                    "from marts.mart_forecast_accuracy where series_id = ? and is_selected and horizon = 1 "
                    "and is_scored group by period_start order by period_start", [series_id])
        title = "Track record: the forecast one month ahead against actual bookings"
        if df.empty:
            return self.empty(title, "No forecast month has closed yet: the track record starts once one has.")
        values = []
        for r in df.to_dict("records"):
            values.append({"month": _v(r["period_start"]), "series": "Actual", "value": _num(r["actual"])})
            values.append({"month": _v(r["period_start"]), "series": "Forecast (1 month ahead)",
                           "value": _num(r["forecast"]), "low": _num(r["lower_80"]), "high": _num(r["upper_80"])})
        spec = charts.lines(values, "month", "Month", "Bookings", band=("low", "high"), x_format="%b %Y")
        return self.chart(page, spec, title, "Each month's forecast made at the end of the month before (backtest "
                                             "origins included), its 80% interval shaded, against what was booked.")

    def projection_section(self, page: Page) -> dict[str, Any]:
        series_id = f"{self.company}:{self.company_key}"
        title = "In-quarter projection"
        latest = self.q("select max(as_of_date) as d from forecasts.fct_period_projections where as_of_date <= ?",
                        [self.ctx.as_of])["d"].iloc[0]
        if _v(latest) is None:
            return {"title": title, "blocks": [self.empty(title, "No projection yet: it is written by the nightly "
                                                                  "forecast step once the pipeline has history.")]}
        df = self.q("select * from forecasts.fct_period_projections where as_of_date = ? and series_id = ? "
                    "order by period_type, period_start", [latest, series_id])
        c = self.cells
        rows = []
        for r in df.to_dict("records"):
            label = self.fiscal_label(r["period_start"], r["period_type"])
            rows.append([c.text_cell(label), c.pct_cell(r["pct_of_period_elapsed"]), c.money_cell(r["won_to_date"]),
                         c.money_cell(r["open_pipeline_expected"]), c.money_cell(r["new_pipeline_expected"]),
                         c.money_cell(r["projection"]), c.money_cell(r["lower_80"]), c.money_cell(r["upper_80"]),
                         c.money_cell(r["commit_call"]), c.money_cell(r["best_case_call"]),
                         c.money_cell(r["weighted_pipeline_call"])])
        blocks: list[dict[str, Any]] = [{"kind": "table", "title": f"Projected bookings as of {_v(latest)}",
                                         "columns": [col("Period"), col("Elapsed", True), col("Won to date", True),
                                                     col("Open pipeline (expected)", True),
                                                     col("New pipeline (expected)", True), col("Projection", True),
                                                     col("80% from", True), col("80% to", True), col("Commit", True),
                                                     col("Best case", True), col("Weighted pipeline", True)],
                                         "rows": rows,
                                         "note": "Projection = won to date + expected wins of the open pipeline "
                                                 "+ expected bookings of deals not created yet; intervals from "
                                                 "simulated deal outcomes. Commit, best case and weighted pipeline "
                                                 "are the calls of the same day."}]
        quarter = df[(df["period_type"] == "quarter") & (pd.to_datetime(df["period_start"]) <= pd.Timestamp(latest))]
        if not quarter.empty:
            start = quarter["period_start"].iloc[0]
            days = self.q("select as_of_date, won_to_date, projection, lower_80, upper_80, commit_call "
                          "from forecasts.fct_period_projections where series_id = ? and period_type = 'quarter' "
                          "and period_start = ? and as_of_date <= ? order by as_of_date", [series_id, start, latest])
            values = []
            for r in days.to_dict("records"):
                d = _v(r["as_of_date"])
                values += [{"day": d, "series": "Projection", "value": _num(r["projection"]),
                            "low": _num(r["lower_80"]), "high": _num(r["upper_80"])},
                           {"day": d, "series": "Won to date", "value": _num(r["won_to_date"])},
                           {"day": d, "series": "Commit call", "value": _num(r["commit_call"])}]
            blocks.append(self.chart(page, charts.lines(values, "day", "Day", "Bookings", band=("low", "high")),
                                     f"This quarter's projection, day by day ({self.fiscal_label(start, 'quarter')})",
                                     "The projection of each day with its 80% interval shaded, beside what was won "
                                     "by then and the commit call (each its own dash and point shape)."))
        return {"title": title, "blocks": blocks}

    # ------------------------------------------------------------ pipeline

    def pipeline(self) -> Page:
        page = Page("pipeline.html", "pipeline", "Pipeline",
                    "How the open pipeline moved this quarter, how deals pass through the stages, and the deals "
                    "that need attention.")
        page.sections.append(self.waterfall_section(page))
        page.sections.append(self.funnel_section(page))
        page.sections.append(self.attention_section())
        return page

    def quarter_start(self) -> date:
        row = self.q("select min(date_day) as d from marts.dim_dates where fiscal_year = "
                     "(select fiscal_year from marts.dim_dates where date_day = ?) and fiscal_quarter = "
                     "(select fiscal_quarter from marts.dim_dates where date_day = ?)",
                     [self.ctx.as_of, self.ctx.as_of])
        return pd.Timestamp(row["d"].iloc[0]).date()

    def waterfall_section(self, page: Page) -> dict[str, Any]:
        title = "Pipeline waterfall, quarter to date"
        start_day = self.quarter_start() - timedelta(days=1)  # a month end: always a snapshot day of mart_pipeline
        df = self.q("""
            select
                sum(created_amount) as created, sum(other_added_amount) as other_added,
                sum(amount_change_amount) as amount_change, sum(won_amount) as won, sum(lost_amount) as lost,
                sum(other_removed_amount) as other_removed, sum(pushed_out_amount) as pushed_out,
                sum(pushed_out_count) as pushed_out_count, sum(pulled_in_amount) as pulled_in,
                sum(won_count) as won_count, sum(lost_count) as lost_count
            from marts.mart_pipeline where snapshot_date > ? and snapshot_date <= ?""", [start_day, self.ctx.as_of])
        ends = self.q("select snapshot_date, sum(open_amount) as open_amount, sum(open_count) as open_count "
                      "from marts.mart_pipeline where snapshot_date in (?, (select max(snapshot_date) from "
                      "marts.mart_pipeline where snapshot_date <= ?)) group by 1 order by 1",
                      [start_day, self.ctx.as_of])
        if ends.empty or _v(df["created"].iloc[0]) is None:
            return {"title": title, "blocks": [self.empty(title, "No pipeline snapshots in this quarter yet.")]}
        f = {k: _num(v) or 0.0 for k, v in df.iloc[0].items()}
        start_amount = _num(ends["open_amount"].iloc[0]) if pd.Timestamp(ends["snapshot_date"].iloc[0]).date() == \
            start_day else 0.0
        end_amount = _num(ends["open_amount"].iloc[-1]) or 0.0
        steps = [("Open at quarter start", start_amount, "total"), ("Created", f["created"], "in"),
                 ("Reopened / other added", f["other_added"], "in"), ("Amount changes", f["amount_change"], "in"),
                 ("Won", -f["won"], "out"), ("Lost", -f["lost"], "out"),
                 ("Other removed", -f["other_removed"], "out")]
        values, level = [], 0.0
        for order, (label, amount, kind) in enumerate(steps):
            if kind == "total":
                lo, hi, level = 0.0, amount, amount
            else:
                lo, hi = level, level + amount
                level = hi
                kind = "in" if amount >= 0 else "out"
            values.append({"step": label, "order": order, "start": lo, "end": hi, "top": max(lo, hi), "amount": amount,
                           "kind": kind, "label": ("" if kind == "total" else "+" if amount >= 0 else "−")
                           + self.money.short(abs(amount))})
        values.append({"step": f"Open on {self.ctx.as_of}", "order": len(steps), "start": 0.0, "end": end_amount,
                       "top": end_amount, "amount": end_amount, "kind": "total", "label": self.money.short(end_amount)})
        blocks = [self.chart(page, charts.waterfall(values), title,
                             f"From the open pipeline on {start_day} to the open pipeline on {self.ctx.as_of}: "
                             "each bar starts where the one before ended and is labelled with its signed amount "
                             "(+ added, − removed)."),
                  {"kind": "tiles", "tiles": [
                      self.tile("Pushed out this quarter", self.money.short(f["pushed_out"]),
                                f"{number(f['pushed_out_count'])} open deals whose close date moved later"),
                      self.tile("Pulled in this quarter", self.money.short(f["pulled_in"]),
                                "open deals whose close date moved earlier"),
                      self.tile("Won / lost this quarter", f"{number(f['won_count'])} / {number(f['lost_count'])}",
                                f"win rate by count {pct(_ratio(f['won_count'], f['won_count'] + f['lost_count']))}"),
                  ]}]
        return {"title": "Pipeline movement, quarter to date", "grid": False, "blocks": blocks}

    def funnel_section(self, page: Page) -> dict[str, Any]:
        title = "Stage funnel"
        cohort_from = (pd.Timestamp(self.ctx.as_of) - pd.DateOffset(months=12)).date()
        funnel = self.q("select stage_rank, stage_name, sum(reached_count) as reached, sum(advanced_count) as "
                        "advanced, sum(won_count) as won from marts.mart_stage_conversion where cohort_month > ? "
                        "group by stage_rank, stage_name order by stage_rank", [cohort_from])
        open_now = self.q("select s.stage_rank, o.stage_name, count(*) as deals, sum(o.amount) as amount "
                          "from marts.fct_opportunities as o left join marts.dim_stages as s using (stage_name) "
                          "where o.status = 'open' group by s.stage_rank, o.stage_name "
                          "order by s.stage_rank nulls last")
        blocks: list[dict[str, Any]] = []
        if funnel.empty:
            blocks.append(self.empty(title, "No deals were created in the last 12 months."))
        else:
            values = [{"stage": f"{int(r['stage_rank'])}. {r['stage_name']}", "rank": int(r["stage_rank"]),
                       "reached": _num(r["reached"]),
                       "label": f"{number(_num(r['reached']))} reached, "
                                f"{pct(_ratio(r['advanced'], r['reached']))} advanced, "
                                f"{pct(_ratio(r['won'], r['reached']))} won"}
                      for r in funnel.to_dict("records")]
            blocks.append(self.chart(page, charts.hbars(values, "stage", "reached", "Deals reached", x_format=",d",
                                                        sort_field="rank"),
                                     "Deals created in the last 12 months: how far they got",
                                     "Each bar: deals that reached the stage (a skipped stage counts as reached); "
                                     "its label: the share that moved on and the share won."))
        c = self.cells
        rows = [[c.text_cell(r["stage_name"]), c.num_cell(r["deals"]), c.money_cell(r["amount"])]
                for r in open_now.to_dict("records")]
        blocks.append({"kind": "table", "title": "Open pipeline by stage", "columns": [
            col("Stage"), col("Open deals", True), col("Amount", True)], "rows": rows,
            "empty": "No open deals."})
        return {"title": title, "grid": True, "blocks": blocks}

    def attention(self, owner_id: str | None = None) -> pd.DataFrame:
        """Open deals that need a look: stale, pushed repeatedly, overdue or with no amount (read once)."""
        if not hasattr(self, "_attention"):
            self._attention = self._read_attention()
        rows = self._attention
        return rows if owner_id is None else [r for r in rows if r["owner_id"] == owner_id]

    def _read_attention(self) -> list[dict[str, Any]]:
        df = self.q("""
            select opportunity_id, opportunity_name, owner_id, owner_name, team_name, stage_name, amount,
                   close_date, last_stage_change_date, close_date_push_count,
                   (?::date - last_stage_change_date) as days_in_stage,
                   last_stage_change_date <= ?::date - ?::integer as is_stale,
                   coalesce(close_date_push_count, 0) >= ? as is_pushed,
                   coalesce(is_overdue, false) as is_overdue,
                   amount is null as is_missing_amount
            from marts.fct_opportunities
            where status = 'open'
            order by amount desc nulls first""",
            [self.ctx.as_of, self.ctx.as_of, self.ctx.stale_days, self.ctx.pushed_times])
        flags = ("is_stale", "is_pushed", "is_overdue", "is_missing_amount")
        return [r for r in _records(df) if any(r[f] for f in flags)]

    def attention_table(self, deals: list[dict[str, Any]], rep_links: dict[str, str], title: str) -> dict[str, Any]:
        c = self.cells
        rows = []
        for r in deals[:ATTENTION_ROWS]:
            flags = [name for key, name in (("is_stale", f"stale {self.ctx.stale_days}d+"),
                                            ("is_pushed", f"pushed {int(_num(r['close_date_push_count']) or 0)}x"),
                                            ("is_overdue", "overdue"), ("is_missing_amount", "no amount"))
                     if bool(_v(r[key]))]
            rows.append([c.text_cell(r["opportunity_name"]), c.text_cell(r["owner_name"], rep_links.get(r["owner_id"])),
                         c.text_cell(r["team_name"]), c.text_cell(r["stage_name"]), c.money_cell(r["amount"]),
                         c.date_cell(r["close_date"]), c.num_cell(r["days_in_stage"]),
                         c.num_cell(r["close_date_push_count"]), c.text_cell(", ".join(flags))])
        shown = "" if len(deals) <= ATTENTION_ROWS else f" The {ATTENTION_ROWS} largest of {len(deals)} are shown."
        return {"kind": "table", "title": title, "columns": [
            col("Deal"), col("Owner"), col("Team"), col("Stage"), col("Amount", True), col("Close date"),
            col("Days in stage", True), col("Close date pushes", True), col("Why")], "rows": rows,
            "empty": "No open deal needs attention.",
            "note": f"Stale: no stage change for {self.ctx.stale_days} days or more (setting report_stale_days); "
                    f"pushed: close date moved later {self.ctx.pushed_times} times or more (report_pushed_times); "
                    f"overdue: close date passed, still open; no amount: open without an amount.{shown}"}

    def attention_section(self) -> dict[str, Any]:
        deals = self.attention()
        tiles = [self.tile(label, number(sum(1 for r in deals if r[key])), "open deals")
                 for key, label in (("is_stale", "Stale"), ("is_pushed", "Pushed repeatedly"),
                                    ("is_overdue", "Overdue"), ("is_missing_amount", "Missing amount"))]
        return {"title": "Deals that need attention", "anchor": "attention",
                "blocks": [{"kind": "tiles", "tiles": tiles},
                           self.attention_table(deals, self.rep_links, "Open deals flagged")]}

    # ------------------------------------------------------------ teams and reps

    @property
    def rep_links(self) -> dict[str, str]:
        return getattr(self, "_rep_links", {})

    def scorecards(self) -> list[dict[str, Any]]:
        return self.rows("select * from marts.mart_rep_scorecard order by owner_id, fiscal_month")

    @staticmethod
    def rep_period_summary(cards: list[dict[str, Any]], start: date) -> dict[str, dict[str, Any]]:
        """Per rep over the months from `start` to as_of: rates recomputed from their counts and sums."""
        sums: dict[str, dict[str, float]] = {}
        keys = ("won_count", "lost_count", "won_amount", "call_count", "email_count", "meeting_count", "lead_count")
        for r in cards:
            if r["fiscal_month"] >= start.isoformat():
                acc = sums.setdefault(r["owner_id"], dict.fromkeys(keys, 0.0))
                for k in keys:
                    acc[k] += _num(r[k]) or 0.0
        for acc in sums.values():
            acc["win_rate"] = _ratio(acc["won_count"], acc["won_count"] + acc["lost_count"])
            acc["avg_deal_size"] = _ratio(acc["won_amount"], acc["won_count"])
        return sums

    def reps_and_teams(self) -> list[Page]:
        cards = self.scorecards()
        by_rep: dict[str, list[dict[str, Any]]] = {}
        for r in cards:
            by_rep.setdefault(r["owner_id"], []).append(r)
        reps = [rows[-1] for rows in by_rep.values()]  # the rep's latest month: current name, team, region
        self._rep_links = {r["owner_id"]: f"reps/{file_name(r['owner_id'])}.html" for r in reps}
        quarter_start = self.quarter_start()
        summary = self.rep_period_summary(cards, quarter_start)
        rep_q = {r["level_id"]: r for r in self.current(self.rep, "quarter")}
        last_end = (quarter_start - timedelta(days=1)).isoformat()
        prev_q = {r["level_id"]: r["attainment"] for r in self.attainment_index.get((self.rep, "quarter"), [])
                  if r["period_end"] == last_end}
        pages = [self.reps_index(self.rep_rows(reps, summary, rep_q, prev_q, prefix=""))]
        pages.append(self.teams_index(self.current(self.team, "quarter")))
        teams = {r["level_id"]: r["team_name"] for r in self.attainment_index.get((self.team, "month"), [])}
        stints = self.team_stints(reps, cards, self.quarter_wins(quarter_start), quarter_start)
        for team_id, team_name in sorted(teams.items(), key=lambda t: str(t[1])):
            whole = [r for r in reps if stints.get((r["owner_id"], team_id)) == "whole"]
            rows = self.rep_rows(whole, summary, rep_q, prev_q, prefix="../")
            rows += [self.part_quarter_row(part, team_name, rep_q.get(part["owner_id"], {}), prefix="../")
                     for (_, t), part in sorted(stints.items()) if t == team_id and part != "whole"]
            pages.append(self.team_page(team_id, team_name, sorted(rows, key=lambda r: r[0]["text"])))
        for r in reps:
            pages.append(self.rep_page(r, by_rep[r["owner_id"]]))
        return pages

    def quarter_wins(self, start: date) -> list[dict[str, Any]]:
        """Each rep's closed deals of the quarter by the team they closed in (mart_win_rates: team of the day)."""
        return self.rows("select owner_id, team_id, sum(won_amount) as won_amount, sum(won_count) as won_count, "
                         "sum(lost_count) as lost_count from marts.mart_win_rates where fiscal_month >= ? "
                         "group by owner_id, team_id", [start])

    @staticmethod
    def team_stints(reps: list[dict[str, Any]], cards: list[dict[str, Any]], wins: list[dict[str, Any]],
                    start: date) -> dict[tuple[str, str], Any]:
        """Which reps a team page lists this quarter, as the marts credit the team: (rep, team) -> "whole" for a
        rep who was on the team all quarter (the rep's own quarter row), else the part of the quarter spent there.

        A rep who moved counts in each team for its own dates (quotas in the team of the quota month's first
        day, bookings in the team of the close date), so each team page's reps add up to the team's quarter.
        A rep with nothing this quarter is listed under the team of the rep's latest month (`reps`), as before.
        """
        months = [r for r in cards if r["fiscal_month"] >= start.isoformat()]
        teams: dict[str, set[str]] = {}
        for r in months:
            teams.setdefault(r["owner_id"], set()).add(r["team_id"])
        for w in wins:
            teams.setdefault(w["owner_id"], set()).add(w["team_id"])
        latest = {r["owner_id"]: r["team_id"] for r in months}  # cards come oldest month first
        stints: dict[tuple[str, str], Any] = {}
        for owner, on in teams.items():
            if len(on) == 1:
                stints[owner, next(iter(on))] = "whole"
                continue
            for team in on:
                here = [r for r in months if r["owner_id"] == owner and r["team_id"] == team]
                won = [w for w in wins if w["owner_id"] == owner and w["team_id"] == team]
                part = {"owner_id": owner, "team_id": team, "is_current": latest.get(owner) == team,
                        "owner_name": next((r["owner_name"] for r in months if r["owner_id"] == owner), owner),
                        "months": [r["fiscal_month"] for r in here]}
                for key, rows in (("quota_amount", here), ("call_count", here), ("meeting_count", here),
                                  ("won_amount", won), ("won_count", won), ("lost_count", won)):
                    part[key] = sum(_num(r[key]) or 0.0 for r in rows)
                stints[owner, team] = part
        for r in reps:
            if r["owner_id"] not in teams:
                stints[r["owner_id"], r["team_id"]] = "whole"
        return stints

    def part_quarter_row(self, part: dict[str, Any], team_name: str, q: dict[str, Any],
                         prefix: str) -> list[dict[str, Any]]:
        """A moved rep's row on one of the quarter's teams: the quota and bookings of the time spent there.

        Pace and the change on last quarter need the whole quarter (the reps page has them); open pipeline is in
        today's team only, so the earlier team's row leaves it out.
        """
        c, oid = self.cells, part["owner_id"]
        months = ", ".join(pd.Timestamp(m).strftime("%b") for m in part["months"])
        name = f"{part['owner_name']} (moved {'in' if part['is_current'] else 'out'}; {months or 'no month'} here)"
        open_q = q if part["is_current"] else {}
        dash = {"text": "–", "sort": "", "numeric": True}
        return [c.text_cell(name, prefix + self._rep_links[oid] if oid in self._rep_links else None),
                c.text_cell(team_name), c.money_cell(part["quota_amount"]), c.money_cell(part["won_amount"]),
                c.pct_cell(_ratio(part["won_amount"], part["quota_amount"])), dash, dict(dash),
                c.pct_cell(_ratio(part["won_count"], part["won_count"] + part["lost_count"])),
                c.money_cell(_ratio(part["won_amount"], part["won_count"])),
                c.money_cell(open_q.get("open_pipeline_amount")), c.num_cell(open_q.get("pipeline_coverage"), 2),
                c.num_cell(part["call_count"]), c.num_cell(part["meeting_count"])]

    def rep_rows(self, reps: list[dict[str, Any]], summary: dict[str, dict[str, Any]],
                 rep_q: dict[str, dict[str, Any]], prev_q: dict[str, Any], prefix: str) -> list[list[dict[str, Any]]]:
        c = self.cells
        rows = []
        for r in reps:
            oid = r["owner_id"]
            q, m = rep_q.get(oid, {}), summary.get(oid, {})
            att, before = _num(q.get("attainment")), _num(prev_q.get(oid))
            trend = None if att is None or before is None else att - before
            trend_cell = {"text": "–" if trend is None else f"{'▲' if trend >= 0 else '▼'} {trend * 100:+.0f} pts",
                          "sort": "" if trend is None else trend, "numeric": True}
            rows.append([c.text_cell(r["owner_name"], prefix + self._rep_links[oid]), c.text_cell(r["team_name"]),
                         c.money_cell(q.get("quota_amount")), c.money_cell(q.get("booked_amount")),
                         c.pct_cell(att), c.pct_cell(q.get("pace"), pace=True), trend_cell,
                         c.pct_cell(m.get("win_rate")), c.money_cell(m.get("avg_deal_size")),
                         c.money_cell(q.get("open_pipeline_amount")), c.num_cell(q.get("pipeline_coverage"), 2),
                         c.num_cell(m.get("call_count")), c.num_cell(m.get("meeting_count"))])
        return rows

    REP_COLUMNS: ClassVar[list[dict[str, Any]]] = [
        col("Rep"), col("Team"), col("Quota", True), col("Booked", True), col("Attainment", True), col("Pace", True),
        col("vs last quarter", True), col("Win rate", True), col("Avg deal", True), col("Open pipeline", True),
        col("Coverage (x)", True), col("Calls", True), col("Meetings", True)]
    REP_NOTE = ("This fiscal quarter to date. Win rate = won / (won + lost) deals and average deal = won amount / "
                "won deals over the quarter's months (recomputed, not averaged); 'vs last quarter': attainment "
                "now minus last quarter's, in points (▲ up, ▼ down). A rep who changed team this quarter is on "
                "each team's page with the quota and bookings of the months there (as the team's own numbers "
                "count them), without pace or trend. Click a column to sort.")

    def reps_index(self, rows: list[list[dict[str, Any]]]) -> Page:
        page = Page("reps.html", "reps", "Rep scorecards", "Every rep with a quota or a closed deal; each name "
                    "opens the rep's scorecard.")
        page.sections.append({"blocks": [{"kind": "table", "id": "reps", "columns": self.REP_COLUMNS, "rows": rows,
                                          "note": self.REP_NOTE, "empty": "No rep has a scorecard yet."}]})
        return page

    def teams_index(self, teams: list[dict[str, Any]]) -> Page:
        page = Page("teams.html", "teams", "Team scorecards", "Each team this quarter; each name opens the team's "
                    "scorecard with its reps.")
        block = self.members_table(self.team, "quarter", link="teams")
        block["id"] = "teams"
        chart_values = [{"name": r["team_name"], "attainment": _num(r["attainment"]) or 0.0,
                         "label": f"{pct(_num(r['attainment']))} of {self.money.short(_num(r['quota_amount']))}"}
                        for r in sorted(teams, key=lambda r: -(r["attainment"] or 0))]
        blocks = [block]
        if chart_values:
            blocks.append(self.chart(page, charts.hbars(chart_values, "name", "attainment", "Attainment",
                                                        x_format=".0%", rule=(1.0, "quota")),
                                     "Attainment this quarter by team", "Each bar labelled with its attainment "
                                                                        "and the team's quota."))
        page.sections.append({"blocks": blocks})
        return page

    def team_page(self, team_id: str, team_name: str, rep_rows: list[list[dict[str, Any]]]) -> Page:
        page = Page(f"teams/{file_name(team_id)}.html", "teams", f"Team {team_name}")
        page.sections.append({"title": "This month, quarter and year",
                              "blocks": [self.kpi_tiles(self.member_current(self.team, team_id))]})
        months = self.periods(self.team, team_id, "month", MONTHS_SHOWN)
        quarters = self.periods(self.team, team_id, "quarter", QUARTERS_SHOWN)
        page.sections.append({"title": "Trend", "grid": True, "blocks": [
            self.attainment_chart(page, months, "month", "Bookings against quota by fiscal month"),
            self.attainment_chart(page, quarters, "quarter", "By fiscal quarter")]})
        page.sections.append({"title": "Reps", "blocks": [{"kind": "table", "columns": self.REP_COLUMNS,
                                                           "rows": rep_rows, "note": self.REP_NOTE,
                                                           "empty": "No rep of this team has a scorecard."}]})
        return page

    def rep_page(self, rep: dict[str, Any], cards: list[dict[str, Any]]) -> Page:
        page = Page(f"reps/{file_name(rep['owner_id'])}.html", "reps", f"{rep['owner_name']}",
                    f"Team {rep['team_name']}, {rep['region']}.")
        page.sections.append({"title": "This month, quarter and year",
                              "blocks": [self.kpi_tiles(self.member_current(self.rep, rep["owner_id"]))]})
        months = self.periods(self.rep, rep["owner_id"], "month", MONTHS_SHOWN)
        trend = cards[-MONTHS_SHOWN:]
        blocks = [self.attainment_chart(page, months, "month", "Bookings against quota by fiscal month")]
        values = [{"month": _v(r["fiscal_month"]), "series": "Win rate", "value": _num(r["win_rate"])}
                  for r in trend if _num(r["win_rate"]) is not None]
        if values:
            blocks.append(self.chart(page, charts.lines(values, "month", "Fiscal month", "Win rate", y_format=".0%",
                                                        tip_format=".0%", x_format="%b %Y"),
                                     "Win rate by month", "Won / (won + lost) deals closed in the month."))
        page.sections.append({"title": "Trend", "grid": True, "blocks": blocks})
        c = self.cells
        rows = [[c.date_cell(r["fiscal_month"]), c.money_cell(r["quota_amount"]), c.money_cell(r["won_amount"]),
                 c.pct_cell(r["attainment"]), c.pct_cell(r["pace"], pace=True), c.num_cell(r["won_count"]),
                 c.num_cell(r["lost_count"]), c.pct_cell(r["win_rate"]), c.money_cell(r["avg_deal_size"]),
                 c.num_cell(r["avg_sales_cycle_days"]), c.money_cell(r["open_pipeline_amount"]),
                 c.num_cell(r["pipeline_coverage"], 2), c.num_cell(r["call_count"]), c.num_cell(r["email_count"]),
                 c.num_cell(r["meeting_count"]), c.num_cell(r["median_response_hours"], 1),
                 c.num_cell(r["attainment_rank_in_team"])]
                for r in cards[::-1][:24]]
        page.sections.append({"title": "Scorecard by month", "blocks": [{"kind": "table", "columns": [
            col("Month"), col("Quota", True), col("Won", True), col("Attainment", True), col("Pace", True),
            col("Won deals", True), col("Lost deals", True), col("Win rate", True), col("Avg deal", True),
            col("Cycle (days)", True), col("Open pipeline", True), col("Coverage (x)", True), col("Calls", True),
            col("Emails", True), col("Meetings", True), col("Lead response (h, median)", True),
            col("Rank in team", True)], "rows": rows,
            "note": "The last 24 fiscal months, newest first (marts.mart_rep_scorecard)."}]})
        att = self.attention(rep["owner_id"])
        page.sections.append({"title": "Deals that need attention",
                              "blocks": [self.attention_table(att, {}, "Open deals flagged")]})
        return page

    # ------------------------------------------------------------ forecast accuracy

    def accuracy(self) -> Page:
        page = Page("accuracy.html", "accuracy", "Forecast accuracy",
                    "The machine forecast against the reps' own calls, on the months and quarters that have closed.")
        levels = [lv for lv in hierarchy().names if lv != "segment"]
        model = self.q("select level, horizon, wape, bias, coverage_80, coverage_95, n_scored from "
                       "marts.mart_forecast_accuracy_summary where model = 'selected' and horizon <= 2")
        calls = self.q("select level, horizon, call_type, wape, bias, n_scored from "
                       "marts.mart_forecast_calls_accuracy_summary where horizon <= 2")
        values = []
        for lv in levels:
            for h in (1, 2):
                for name, frame, key in (("Forecast", model, None), ("Commit call", calls, "commit"),
                                         ("Best-case call", calls, "best_case")):
                    sel = frame[(frame["level"] == lv) & (frame["horizon"] == h)]
                    if key:
                        sel = sel[sel["call_type"] == key]
                    if not sel.empty and _num(sel["wape"].iloc[0]) is not None:
                        w = _num(sel["wape"].iloc[0])
                        values.append({"where": f"{lv}, {h} month{'s' if h > 1 else ''} ahead", "which": name,
                                       "value": w, "short": pct(w)})
        title = "Forecast error (WAPE): the forecast against the reps' calls"
        blocks: list[dict[str, Any]] = []
        if values:
            blocks.append(self.chart(page, charts.grouped_bars(values, "where", "Level and horizon", "which",
                                                               "WAPE (lower is better)", height=280), title,
                                     "WAPE = sum of absolute errors / sum of actual bookings over the scored months. "
                                     "Each bar labelled; forecast, commit and best case differ by outline dash "
                                     "as well as colour."))
        else:
            blocks.append(self.empty(title, "No forecast month or call has been scored yet."))
        c = self.cells
        rows = []
        for r in model.sort_values(["level", "horizon"]).to_dict("records"):
            rows.append([c.text_cell(r["level"]), c.text_cell("Forecast"), c.num_cell(r["horizon"]),
                         c.pct_cell(r["wape"], 1), c.pct_cell(r["bias"], 1), c.pct_cell(r["coverage_80"]),
                         c.pct_cell(r["coverage_95"]), c.num_cell(r["n_scored"])])
        for r in calls.sort_values(["level", "horizon", "call_type"]).to_dict("records"):
            rows.append([c.text_cell(r["level"]), c.text_cell(f"{r['call_type'].replace('_', ' ')} call"),
                         c.num_cell(r["horizon"]), c.pct_cell(r["wape"], 1), c.pct_cell(r["bias"], 1),
                         c.text_cell(None), c.text_cell(None), c.num_cell(r["n_scored"])])
        blocks.append({"kind": "table", "title": "By level and months ahead", "columns": [
            col("Level"), col("Who"), col("Months ahead", True), col("WAPE", True), col("Bias", True),
            col("Inside 80%", True), col("Inside 95%", True), col("Months scored", True)], "rows": rows,
            "note": "Bias = (forecast − actual) / actual: positive over-forecasts. Inside 80%/95%: share of actuals "
                    "inside the forecast's interval (a call has none)."})
        page.sections.append({"title": "Monthly bookings forecast", "blocks": blocks})
        conv = self.q("select tenth_of_period_elapsed, method, wape, n_scored from "
                      "marts.mart_projection_accuracy_summary where level = ? and period_type = 'quarter' "
                      "order by method, tenth_of_period_elapsed", [self.company])
        title = "In-quarter projection: how each call converges through the quarter (company)"
        names = {"projection": "Projection", "commit_call": "Commit call", "best_case_call": "Best-case call",
                 "weighted_pipeline_call": "Weighted pipeline", "time_series": "Time-series forecast"}
        if conv.empty:
            blocks2 = [self.empty(title, "No quarter has been projected and closed yet.")]
        else:
            vals = [{"tenth": int(r["tenth_of_period_elapsed"]) * 10, "series": names.get(r["method"], r["method"]),
                     "value": _num(r["wape"])} for r in conv.to_dict("records") if _num(r["wape"]) is not None]
            blocks2 = [self.chart(page, charts.lines(vals, "tenth", "% of the quarter elapsed", "WAPE",
                                                     x_type="quantitative", y_format=".0%", tip_format=".1%",
                                                     series_title="Call", x_values=list(range(10, 101, 10))),
                                  title,
                                  "Error of each call of the quarter's bookings by how far into the quarter it was "
                                  "made; each call its own dash and point shape.")]
        page.sections.append({"title": "In-quarter projection", "blocks": blocks2})
        return page

    # ------------------------------------------------------------ data quality

    def quality(self, data_docs_href: str | None) -> Page:
        page = Page("quality.html", "quality", "Data quality",
                    "What this run loaded and set aside, the checks' warnings, and the Great Expectations "
                    "Data Docs.")
        c = self.cells
        loads = self.q("select source_file, table_name, row_count, quarantined, load_mode, inserted, updated, "
                       "deleted, encoding from raw._loads where run_id = ? order by source_file", [self.ctx.run_id])
        rows = [[c.text_cell(r["source_file"]), c.text_cell(r["load_mode"]), c.num_cell(r["row_count"]),
                 c.num_cell(r["quarantined"]), c.num_cell(r["inserted"]), c.num_cell(r["updated"]),
                 c.num_cell(r["deleted"]), c.text_cell(r["encoding"])] for r in loads.to_dict("records")]
        total_q = int(loads["quarantined"].fillna(0).sum()) if not loads.empty else 0
        page.sections.append({"title": "Loaded and quarantined rows", "blocks": [
            {"kind": "tiles", "tiles": [
                self.tile("Rows read", number(int(loads["row_count"].fillna(0).sum()) if not loads.empty else 0),
                          f"in {len(loads)} export files"),
                self.tile("Rows quarantined", number(total_q), "kept in the quarantine schema, as read"),
                self.tile("Checks' warnings", number(len(self.ctx.warnings)), "Great Expectations and run checks"),
                self.tile("dbt tests", number(self.ctx.build.get("tests_passed")),
                          f"passed, {number(self.ctx.build.get('tests_warned', 0))} warned")]},
            {"kind": "table", "title": "This run's load, per export file", "columns": [
                col("File"), col("Load"), col("Rows read", True), col("Quarantined", True), col("Inserted", True),
                col("Updated", True), col("Deleted", True), col("Encoding")], "rows": rows,
             "empty": f"raw._loads has no rows of run {self.ctx.run_id}."}]})
        quarantine = self.quarantined_rows()
        page.sections.append({"title": "Quarantined rows", "anchor": "quarantine", "blocks": quarantine})
        warn_rows = [[c.text_cell(w)] for w in self.ctx.warnings]
        links = []
        if data_docs_href:
            links.append({"href": data_docs_href, "text": "Great Expectations Data Docs of this run",
                          "note": "every suite and expectation with its result (opens offline)"})
        page.sections.append({"title": "Warnings and Data Docs", "blocks": [
            {"kind": "table", "columns": [col("Warning")], "rows": warn_rows,
             "empty": "No check warned on this run."},
            {"kind": "links", "title": "Data Docs", "links": links,
             "note": "" if links else "This run's Data Docs were not found (its run folder was removed)."}]})
        return page

    def quarantined_rows(self) -> list[dict[str, Any]]:
        c = self.cells
        tables = self.q("select table_name from information_schema.tables where table_schema = 'quarantine' "
                        "order by table_name")["table_name"].tolist()
        parts = [f"select '{t}' as table_name, _source_file, _row_number, _reason, _field, _value "
                 f"from quarantine.\"{t}\"" for t in tables if re.fullmatch(r"[A-Za-z0-9_]+", t)]
        if not parts:
            return [self.empty("Quarantined rows", "No quarantine tables in this warehouse.")]
        union = " union all ".join(parts)
        by_rule = self.q(f"select table_name, _source_file, _reason, _field, count(*) as n "
                         f"from ({union}) as quarantined "
                         "group by table_name, _source_file, _reason, _field order by n desc")
        sample = self.q(f"select * from ({union}) as quarantined order by table_name, _row_number limit 200")
        rule_rows = [[c.text_cell(r["_source_file"]), c.text_cell(r["_reason"]), c.text_cell(r["_field"]),
                      c.num_cell(r["n"])] for r in by_rule.to_dict("records")]
        sample_rows = [[c.text_cell(r["_source_file"]), c.num_cell(r["_row_number"]), c.text_cell(r["_reason"]),
                        c.text_cell(r["_field"]), c.text_cell(r["_value"])] for r in sample.to_dict("records")]
        return [{"kind": "table", "title": "By file, rule and field", "columns": [
                    col("File"), col("Rule"), col("Field"), col("Rows", True)], "rows": rule_rows,
                 "empty": "No row is in quarantine."},
                {"kind": "table", "title": "The rows (first 200)", "columns": [
                    col("File"), col("Row", True), col("Rule"), col("Field"), col("Value as read")],
                 "rows": sample_rows, "empty": "No row is in quarantine.",
                 "note": "Every quarantined row stays in the quarantine schema with its file and row number."}]

    # ------------------------------------------------------------ all of it

    def pages(self, data_docs_href: str | None) -> list[Page]:
        people = self.reps_and_teams()  # first: the pipeline page links the reps
        return [self.overview(), self.pipeline(), *people, self.accuracy(), self.quality(data_docs_href)]
