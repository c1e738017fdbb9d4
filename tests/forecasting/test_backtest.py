"""Rolling-origin backtest with nested selection, and the `salesos forecast backtest` CLI."""

import numpy as np
import pandas as pd
import pytest

import forecasting.backtest as bt
from forecasting.backtest import RESULT_COLUMNS, backtest, build_parser, main, read_series_csv
from forecasting.methods import Candidate, default_candidates, load_methods
from forecasting.select import select_model

NAIVE = [Candidate("seasonal_naive", "seasonal_naive")]


def seasonal_series(n=30, seed=5):
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2023-02-01", periods=n, freq="MS")
    y = (500 + 10 * np.arange(n)) * np.where(ds.month.isin([1, 4, 7, 10]), 1.4, 1.0) + rng.normal(0, 15, n)
    return pd.DataFrame({"ds": ds, "y": y})


def test_backtest_scores_match_hand_computation():
    # y = 1..15: at origins 13 and 14 seasonal naive says y[t-12], always 12 short; lag-12 scale is 12
    series = pd.DataFrame({"ds": pd.date_range("2020-01-01", periods=15, freq="MS"), "y": np.arange(1.0, 16.0)})
    out = backtest(series, horizon=1, origins=2, candidates=NAIVE)
    assert out.columns.tolist() == RESULT_COLUMNS
    assert out["model"].tolist() == ["seasonal_naive", "selected"]
    row = out.set_index("model").loc["seasonal_naive"]
    assert row["mase"] == pytest.approx(1.0)
    assert row["wape"] == pytest.approx(24 / 29)  # |14-2| + |15-3| over 14 + 15
    assert 0.0 <= row["coverage_80"] <= row["coverage_95"] <= 1.0
    assert out.attrs["origins"] == ["2021-02-01", "2021-03-01"]


def test_backtest_has_every_candidate_seasonal_naive_and_selected():
    out = backtest(seasonal_series(), horizon=3, origins=2)
    assert out.columns.tolist() == RESULT_COLUMNS
    assert out["model"].tolist() == [c.name for c in default_candidates()] + ["selected"]
    assert out[RESULT_COLUMNS[1:]].notna().all().all()
    assert ((out[["coverage_80", "coverage_95"]] >= 0) & (out[["coverage_80", "coverage_95"]] <= 1)).all().all()
    picks = out.attrs["selected_models"]
    singles = set(out["model"].iloc[:-1])
    assert len(picks) == 2
    reg = load_methods()
    for pick in picks:  # a candidate, or the registry's combination of a few: median(a,b,c)
        combined = pick.startswith(f"{reg.combine}(")
        members = pick[len(reg.combine) + 1:-1].split(",") if combined else [pick]
        assert set(members) <= singles and len(members) <= reg.combine_max
    if len(set(picks)) == 1 and picks[0] in singles:  # the same single pick at both origins: its own row
        pd.testing.assert_series_equal(
            out.set_index("model").loc["selected"], out.set_index("model").loc[picks[0]], check_names=False
        )


def test_selection_is_nested_inside_each_origin(monkeypatch):
    seen = []

    def spy(history, horizon, origins, candidates=None):
        seen.append((history["ds"].max(), origins))
        return select_model(history, horizon, origins, candidates)

    monkeypatch.setattr(bt, "select_model", spy)
    series = seasonal_series(24)
    backtest(series, horizon=2, origins=3, candidates=[*NAIVE, Candidate("theta", "theta")], selection_origins=4)
    origins = series["ds"].iloc[[20, 21, 22]].tolist()  # the three origins: training ends the month before
    assert [s[0] for s in seen] == [o - pd.offsets.MonthBegin(1) for o in origins]
    assert {s[1] for s in seen} == {4}


def test_backtest_rejects_a_series_too_short_for_the_horizon():
    with pytest.raises(ValueError, match="needs at least 9"):
        backtest(seasonal_series(8), horizon=6, origins=2)


# ------------------------------------------------------------------------------------------------------- CLI


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_cli_writes_results_with_exact_columns_and_rows(tmp_path, capsys):
    s = seasonal_series(28)
    src = tmp_path / "series.csv"
    # mid-month dates, shuffled rows: normalised to month starts and sorted
    pd.DataFrame({"ds": (s["ds"] + pd.Timedelta(days=14)).dt.strftime("%Y-%m-%d"), "y": s["y"]}).sample(
        frac=1, random_state=0
    ).to_csv(src, index=False)
    out = tmp_path / "out" / "results.csv"
    assert main([str(src), "--horizon", "3", "--origins", "2", "--output", str(out)]) == 0
    res = pd.read_csv(out)
    assert res.columns.tolist() == ["model", "mase", "wape", "coverage_80", "coverage_95"]
    assert {"seasonal_naive", "selected"} <= set(res["model"])
    # the CLI reports every registered method, the nightly-costly AutoARIMA included
    assert res["model"].tolist() == [c.name for c in default_candidates(prophet_grid="all")] + ["selected"]
    assert {"auto_ets", "auto_arima", "auto_theta"} <= set(res["model"])
    printed = capsys.readouterr().out
    assert "selected" in printed and "coverage_80" in printed


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("ds,y\n2024-01-01,10\nnot-a-date,11\n", "line 3: ds 'not-a-date' is not a date"),
        ("ds,y\n2024-01-01,10\n2024-02-01,lots\n", "line 3: y 'lots' is not a number"),
        ("ds,y\n2024-01-01,10\n2024-02-01,\n", "line 3: y is missing for 2024-02-01"),
        ("ds,y\n2024-01-01,10\n,11\n", "line 3: ds is missing"),
        ("ds,y\n2024-01-01,10\n2024-02-01,NaN\n", "line 3: y 'NaN' is not a finite number"),
        ("ds,y\n2024-01-01,10\n2024-02-01,-5\n", "line 3: y '-5' is negative"),
        # weekly rows: not monthly, with the lines and dates that show it
        ("ds,y\n" + "".join(f"{d.date()},1\n" for d in pd.date_range("2024-01-01", periods=10, freq="7D")),
         "lines 2, 3, 4, 5, 6: dates are not monthly (2024-01-01 and 2024-01-08 are 7 days apart"),
        ("ds,y\n2024-01-01,1\n2024-04-01,2\n2024-07-01,3\n2024-10-01,4\n",
         "line 3: dates are not monthly (rows are 3 months apart, e.g. 2024-01 then 2024-04)"),
        ("month,y\n2024-01-01,10\n", "missing column(s) ds"),
        ("ds,amount\n2024-01-01,10\n", "missing column(s) y"),
        ("ds,y\n", "no data rows"),
        ("ds,y\n2024-01-01,1\n2024-02-01,2\n2024-02-20,2\n2024-03-01,2\n",
         "lines 3, 4: month 2024-02 appears more than once"),
        ("ds,y\n2024-01-01,1\n2024-02-01,2\n2024-04-01,2\n2024-05-01,2\n",
         "line 4: month 2024-03 is missing (rows must be consecutive months: 2024-02 is followed by 2024-04"),
    ],
)
def test_cli_bad_csv_is_a_clear_error(tmp_path, capsys, content, message):
    src = write(tmp_path / "bad.csv", content)
    out = tmp_path / "r.csv"
    assert main([str(src), "--horizon", "1", "--origins", "1", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(src) in err
    assert message in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    assert not out.exists()


def test_cli_missing_file_and_too_short_series(tmp_path, capsys):
    assert main([str(tmp_path / "nope.csv"), "--output", str(tmp_path / "r.csv")]) == 2
    assert "nope.csv: cannot read" in capsys.readouterr().err
    src = write(tmp_path / "short.csv", "ds,y\n2024-01-01,1\n2024-02-01,2\n2024-03-01,3\n")
    assert main([str(src), "--horizon", "3", "--origins", "1", "--output", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "3 months; the backtest needs at least 24" in err and len(err.strip().splitlines()) == 1


def test_cli_parser_is_the_salesos_subcommand():
    parser = build_parser()
    assert parser.prog == "salesos forecast backtest"
    with pytest.raises(SystemExit):
        parser.parse_args(["s.csv", "--horizon", "0", "--output", "r.csv"])
    args = parser.parse_args(["s.csv", "--output", "r.csv", "--quarter-end-months", "3,6,9,12"])
    assert args.quarter_end_months == (3, 6, 9, 12)


def test_read_series_csv_normalises_months(tmp_path):
    src = write(tmp_path / "s.csv", "y,ds\n5,2024-02-29\n4,2024-01-31T10:00:00Z\n")
    df = read_series_csv(src)
    assert df["ds"].tolist() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01")]
    assert df["y"].tolist() == [4.0, 5.0]


def test_salesos_cli_runs_the_backtest(tmp_path):
    import numpy as np
    import pandas as pd

    from salesos.cli import main as salesos_main

    ds = pd.date_range("2022-01-01", periods=36, freq="MS")
    y = 100 + 30 * np.isin(ds.month, [1, 4, 7, 10]) + np.arange(36)
    series = tmp_path / "series.csv"
    pd.DataFrame({"ds": ds.date, "y": y}).to_csv(series, index=False)
    out = tmp_path / "results.csv"
    assert salesos_main(["forecast", "backtest", str(series), "--horizon", "3", "--origins", "2", "--output", str(out)]) == 0
    results = pd.read_csv(out)
    assert list(results.columns) == ["model", "mase", "wape", "coverage_80", "coverage_95"]
    assert {"seasonal_naive", "selected"} <= set(results["model"])
