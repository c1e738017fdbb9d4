"""MASE, WAPE and coverage (forecasting/metrics.py) on hand-checked numbers."""


import numpy as np
import pytest

from forecasting.metrics import coverage, mase, mase_scale, wape


def test_mase_scale_uses_lag_12_then_lag_1_then_level():
    assert mase_scale(list(range(1, 14))) == 12.0  # 13 points: lag-12 differences are all 12
    assert mase_scale([1, 2, 3, 4]) == 1.0  # under 13 points: lag 1
    repeating = [5, 1, 3, 7, 2, 8, 4, 6, 9, 0, 3, 5] * 2
    assert mase_scale(repeating) == pytest.approx(np.mean(np.abs(np.diff(repeating))))  # lag-12 change is 0
    assert mase_scale([4, 4, 4]) == 4.0
    assert mase_scale([0, 0]) == 1.0


def test_mase_wape_coverage_on_hand_checked_numbers():
    assert mase([5, 6], [4, 8], train=[1, 2, 3, 4]) == pytest.approx(1.5)
    assert mase([20], [14], train=list(range(1, 14))) == pytest.approx(0.5)
    assert wape([10, 0, 30], [12, 1, 27]) == pytest.approx(6 / 40)
    assert np.isnan(wape([0, 0], [1, 1]))
    assert coverage([1, 2, 3, 4], [0, 2, 3.5, 0], [1, 3, 4, 3]) == 0.5  # bounds count as inside
