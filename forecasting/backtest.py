"""Rolling-origin backtest of every candidate and of the nightly selection, for one monthly series.

`backtest` cuts the series at its last `origins` origins (expanding window, one month apart, each scored on
`horizon` months). At each origin every candidate is fitted on the data before it, and so is the `selected`
method: `select_model` is run on that training window alone (its own inner origins), exactly what the
nightly run would have done on that date, so the `selected` row measures the whole procedure, selection
included, without peeking. Intervals of every row are calibrated from the inner backtest of that window.

CLI (wired by the lead as `salesos forecast backtest`)::

    salesos forecast backtest SERIES.csv --horizon 12 --origins 6 --output RESULTS.csv

reads `ds,y` (monthly; any parseable date, normalised to the month start), writes one row per model with
columns `model, mase, wape, coverage_80, coverage_95` and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.intervals import add_intervals, interval_errors
from forecasting.methods import Candidate, default_candidates, with_seasonal_naive
from forecasting.metrics import mase_scale
from forecasting.prophet_fit import DEFAULT_QUARTER_END_MONTHS, brief_error
from forecasting.select import refit_order, select_model
from forecasting.series import MIN_TRAIN, future_months, validate_history

RESULT_COLUMNS = ["model", "mase", "wape", "coverage_80", "coverage_95"]
SELECTED = "selected"
MIN_CLI_MONTHS = 24  # `salesos forecast backtest` refuses shorter series: no method can be judged on them

log = logging.getLogger(__name__)


class SeriesFileError(ValueError):
    """A series CSV that cannot be read as a monthly ds,y series; the message names the file and row."""


class _Score:
    """Running totals of one model's errors over the backtest origins."""

    def __init__(self) -> None:
        self.mases: list[float] = []
        self.abs_err = 0.0
        self.abs_actual = 0.0
        self.in80 = 0
        self.in95 = 0
        self.points = 0

    def add(self, actual: np.ndarray, fc: pd.DataFrame, scale: float) -> None:
        err = np.abs(actual - fc["yhat"].to_numpy())
        self.mases.append(float(err.mean()) / scale)
        self.abs_err += float(err.sum())
        self.abs_actual += float(np.abs(actual).sum())
        self.in80 += int(((actual >= fc["yhat_lower_80"]) & (actual <= fc["yhat_upper_80"])).sum())
        self.in95 += int(((actual >= fc["yhat_lower_95"]) & (actual <= fc["yhat_upper_95"])).sum())
        self.points += len(actual)

    def row(self, name: str) -> dict[str, object]:
        nan = float("nan")
        return {
            "model": name,
            "mase": float(np.mean(self.mases)) if self.mases else nan,
            "wape": self.abs_err / self.abs_actual if self.abs_actual > 0 else nan,
            "coverage_80": self.in80 / self.points if self.points else nan,
            "coverage_95": self.in95 / self.points if self.points else nan,
        }


def backtest(series: pd.DataFrame, horizon: int, origins: int, candidates: Sequence[Candidate] | None = None,
             selection_origins: int | None = None) -> pd.DataFrame:
    """Score every candidate and the nested `selected` procedure at the last `origins` origins.

    Returns columns model, mase, wape, coverage_80, coverage_95: one row per candidate (in candidate order,
    seasonal_naive first) and a final `selected` row. MASE is averaged over origins (each origin scaled by its
    own training window); WAPE and coverage pool every origin and step. `selection_origins` is how many inner
    origins the nested selection uses (default: `origins`, as the nightly run would be configured). A
    candidate that fails to fit at an origin is scored on the origins where it fitted. `attrs` records the
    origins and which model was selected at each.
    """
    if horizon < 1 or origins < 1:
        raise ValueError("horizon and origins must be at least 1")
    hist = validate_history(series)
    n = len(hist)
    cuts = sorted(c for c in (n - horizon - k for k in range(origins)) if c >= MIN_TRAIN)
    if not cuts:
        raise ValueError(
            f"the series has {n} months; a backtest with horizon {horizon} needs at least {horizon + MIN_TRAIN}"
        )
    cands = with_seasonal_naive(candidates)
    inner = selection_origins if selection_origins is not None else origins
    scores = {c.name: _Score() for c in cands}
    scores[SELECTED] = _Score()
    picks: list[str] = []
    y = hist["y"].to_numpy(dtype=float)
    for cut in cuts:
        train = hist.iloc[:cut]
        actual = y[cut : cut + horizon]
        scale = mase_scale(y[:cut])
        sel = select_model(train, horizon, inner, cands)
        ds = future_months(train, horizon)
        forecasts: dict[str, pd.DataFrame] = {}
        cache: dict[str, object] = {}
        for cand in cands:
            try:
                values = cand.predict_values(train, horizon, cache)
            except Exception as exc:
                log.warning("%s failed at origin %s: %s", cand.name, ds[0].date(), brief_error(exc))
                continue
            fc = add_intervals(pd.DataFrame({"ds": ds, "yhat": values}), sel.scaled_errors.get(cand.name), scale)
            forecasts[cand.name] = fc
            scores[cand.name].add(actual, fc, scale)
        chosen = ""
        def fails(member: Candidate, train: pd.DataFrame = train, cache: dict = cache) -> bool:
            try:
                member.predict_values(train, horizon, cache)
            except Exception:
                return True
            return False

        for cand in refit_order(sel, cands, fails):  # what `forecast` would fit: the choice, else the next best
            if cand.name not in forecasts:
                try:
                    values = cand.predict_values(train, horizon, cache)
                except Exception:
                    continue
                forecasts[cand.name] = add_intervals(pd.DataFrame({"ds": ds, "yhat": values}),
                                                     interval_errors(cand, sel.scaled_errors), scale)
            chosen = cand.name
            break
        picks.append(chosen)
        scores[SELECTED].add(actual, forecasts[chosen], scale)
    out = pd.DataFrame([scores[c.name].row(c.name) for c in cands] + [scores[SELECTED].row(SELECTED)],
                       columns=RESULT_COLUMNS)
    out.attrs["origins"] = [str(hist["ds"].iloc[c].date()) for c in cuts]
    out.attrs["selected_models"] = picks
    return out


# ------------------------------------------------------------------------------------------------------- CLI


def read_series_csv(path: Path) -> pd.DataFrame:
    """Read a `ds,y` CSV into a validated monthly series; SeriesFileError names the file and line on bad input."""
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise SeriesFileError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    with fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in (reader.fieldnames or [])]
        missing = [c for c in ("ds", "y") if c not in fields]
        if missing:
            raise SeriesFileError(
                f"{path}: missing column(s) {', '.join(missing)} (header has: {', '.join(fields) or 'nothing'})"
            )
        reader.fieldnames = fields
        ds, ys, lines = [], [], []
        for row in reader:
            line = reader.line_num
            raw_ds, raw_y = (row.get("ds") or "").strip(), (row.get("y") or "").strip()
            if not raw_ds and not raw_y:
                continue  # blank line
            if not raw_ds:
                raise SeriesFileError(f"{path}, line {line}: ds is missing (y {raw_y!r} has no month)")
            if not raw_y:
                raise SeriesFileError(f"{path}, line {line}: y is missing for {raw_ds} "
                                      "(a month without bookings is 0, not blank)")
            try:
                stamp = pd.Timestamp(raw_ds)
                if pd.isna(stamp):
                    raise ValueError
            except (ValueError, TypeError):
                raise SeriesFileError(f"{path}, line {line}: ds {raw_ds!r} is not a date") from None
            try:
                value = float(raw_y)
            except ValueError:
                raise SeriesFileError(f"{path}, line {line}: y {raw_y!r} is not a number") from None
            if not math.isfinite(value):
                raise SeriesFileError(f"{path}, line {line}: y {raw_y!r} is not a finite number")
            if value < 0:
                raise SeriesFileError(f"{path}, line {line}: y {raw_y!r} is negative (monthly bookings are not)")
            ds.append(stamp.tz_localize(None) if stamp.tzinfo else stamp)
            ys.append(value)
            lines.append(line)
    if not ds:
        raise SeriesFileError(f"{path}: no data rows")
    df = pd.DataFrame({"ds": pd.DatetimeIndex(ds).to_period("M").to_timestamp(), "y": ys, "line": lines,
                       "raw": ds})
    dup = df[df["ds"].duplicated(keep=False)]
    if not dup.empty:
        month = dup["ds"].iloc[0]
        same = dup[dup["ds"] == month]
        at = ", ".join(str(v) for v in same["line"])
        if len(df) > 1.5 * df["ds"].nunique():  # most months repeat: weekly or daily rows, not one per month
            days = abs((same["raw"].iloc[1] - same["raw"].iloc[0]).days)
            raise SeriesFileError(
                f"{path}, lines {at}: dates are not monthly ({same['raw'].iloc[0].date()} and "
                f"{same['raw'].iloc[1].date()} are {days} days apart, in the same month); give one row per month "
                "(sum the bookings of each month)")
        raise SeriesFileError(f"{path}, lines {at}: month {month.strftime('%Y-%m')} appears more than once")
    df = df.sort_values("ds").reset_index(drop=True)
    steps = (df["ds"].dt.year * 12 + df["ds"].dt.month).diff().iloc[1:]
    if len(steps) and steps.median() > 1:  # quarterly or yearly rows
        i = int(steps.reset_index(drop=True).gt(1).idxmax()) + 1
        raise SeriesFileError(
            f"{path}, line {df['line'].iloc[i]}: dates are not monthly (rows are {int(steps.median())} months "
            f"apart, e.g. {df['ds'].iloc[i - 1].strftime('%Y-%m')} then {df['ds'].iloc[i].strftime('%Y-%m')}); "
            "give one row per month")
    if len(steps) and steps.max() > 1:
        i = int(steps.reset_index(drop=True).gt(1).idxmax()) + 1
        gap = df["ds"].iloc[i - 1] + pd.offsets.MonthBegin(1)
        raise SeriesFileError(
            f"{path}, line {df['line'].iloc[i]}: month {gap.strftime('%Y-%m')} is missing (rows must be consecutive "
            f"months: {df['ds'].iloc[i - 1].strftime('%Y-%m')} is followed by {df['ds'].iloc[i].strftime('%Y-%m')}; "
            "a month without bookings is a row with y 0)")
    return df[["ds", "y"]]


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value!r}")
    return n


def _months(value: str) -> tuple[int, ...]:
    try:
        months = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of months: {value!r}") from None
    if not months or any(not 1 <= m <= 12 for m in months):
        raise argparse.ArgumentTypeError(f"months must be 1-12: {value!r}")
    return months


def build_parser() -> argparse.ArgumentParser:
    """Arguments of `salesos forecast backtest`."""
    parser = argparse.ArgumentParser(
        prog="salesos forecast backtest",
        description="Rolling-origin backtest of every forecasting candidate and of the nightly model selection.",
    )
    parser.add_argument("series", type=Path, help="CSV with columns ds (month) and y (bookings)")
    parser.add_argument("--horizon", type=_positive_int, default=12, help="months forecast at each origin")
    parser.add_argument("--origins", type=_positive_int, default=6, help="backtest origins, one month apart")
    parser.add_argument("--selection-origins", type=_positive_int, default=None,
                        help="inner origins the nested selection uses (default: --origins)")
    parser.add_argument("--quarter-end-months", type=_months, default=DEFAULT_QUARTER_END_MONTHS,
                        help="fiscal quarter-end months, e.g. 1,4,7,10 (default, fiscal year from February)")
    parser.add_argument("--output", type=Path, required=True, help="results CSV to write")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the backtest CLI; 0 on success, 2 on unusable input."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        series = read_series_csv(args.series)
        if len(series) < MIN_CLI_MONTHS:
            raise SeriesFileError(f"{args.series}: {len(series)} months; the backtest needs at least "
                                  f"{MIN_CLI_MONTHS} (two years, to tell a season from noise)")
        result = backtest(series, args.horizon, args.origins, default_candidates(args.quarter_end_months, "all"),
                          selection_origins=args.selection_origins)
    except ValueError as exc:  # SeriesFileError included
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(args.output, index=False)
    print(f"{args.series}: {len(series)} months, horizon {args.horizon}, origins {', '.join(result.attrs['origins'])}")
    print(f"selected per origin: {', '.join(result.attrs['selected_models'])}")
    print(result.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
