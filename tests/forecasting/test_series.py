"""Checked monthly histories (forecasting/series.py): empty, gaps, dates normalised."""


import pandas as pd
import pytest

from forecasting.methods import seasonal_naive
from forecasting.series import validate_history
from tests.forecasting.synthetic import monthly


def test_empty_history_and_gaps_are_clear_errors():
    with pytest.raises(ValueError, match="empty"):
        seasonal_naive(monthly([]), 3)
    gappy = monthly(range(6)).drop(index=2)
    with pytest.raises(ValueError, match="2022-04-01 is missing"):
        validate_history(gappy)
    with pytest.raises(ValueError, match="duplicate"):
        validate_history(pd.concat([monthly([1, 2]), monthly([3])]))


def test_history_dates_are_normalised_to_month_start():
    h = pd.DataFrame({"ds": ["2024-01-15", "2024-02-28", "2024-03-01"], "y": [1, 2, 3]})
    assert validate_history(h)["ds"].dt.day.tolist() == [1, 1, 1]
