"""Many series in a process pool (forecasting/pool.py): same results for any size, robust start-up."""

import os
import tempfile

import numpy as np
import pandas as pd

from forecasting.pool import forecast_many
from tests.forecasting.synthetic import monthly, trending_seasonal


def test_forecast_many_same_results_with_one_and_two_processes(tmp_path, monkeypatch):
    series = {
        "rep_a": trending_seasonal(20, seed=1),
        "rep_b": monthly(np.random.default_rng(2).uniform(0, 50, 8)),
        "team_x": trending_seasonal(26, seed=3),
    }
    # a temp folder of this test's own: another process's forecast (a shared machine) makes its own in /tmp
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def temp_roots():
        return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("salesos-forecast-")}

    before = temp_roots()
    one = forecast_many(series, horizon=3, origins=2, processes=1)
    two = forecast_many(series, horizon=3, origins=2, processes=2)
    assert temp_roots() == before  # the workers' cmdstan folders are gone
    assert list(one) == list(two) == ["rep_a", "rep_b", "team_x"]
    for key in series:
        pd.testing.assert_frame_equal(one[key].forecast, two[key].forecast)
        assert one[key].selection.model == two[key].selection.model
        assert one[key].selection.scores == two[key].selection.scores


def test_forecast_many_finishes_in_process_when_the_pool_breaks(monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    import forecasting.pool as fm

    class Broken:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            raise BrokenProcessPool("a worker was killed")

        def __exit__(self, *exc):
            return False

    rng = np.random.default_rng(0)
    ds = pd.date_range("2023-01-01", periods=24, freq="MS")
    series = {k: pd.DataFrame({"ds": ds, "y": 100 + rng.uniform(0, 10, 24)}) for k in ("a", "b")}
    expected = fm.forecast_many(series, horizon=2, origins=1, processes=1)
    monkeypatch.setattr(fm, "ProcessPoolExecutor", Broken)
    got = fm.forecast_many(series, horizon=2, origins=1, processes=2)
    assert list(got) == ["a", "b"]
    for k in series:
        pd.testing.assert_frame_equal(got[k].forecast, expected[k].forecast)


def test_spawned_workers_do_not_rerun_the_callers_main_script(tmp_path):
    """Under Airflow the main script is bin/airflow, which cannot be re-imported in a worker: workers skip it."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "caller.py"
    script.write_text(
        "import logging, sys\n"
        "if __name__ != '__main__':\n"
        "    raise SystemExit('the main script was re-run in a worker')\n"
        "import numpy as np, pandas as pd\n"
        "from forecasting.pool import forecast_many\n"
        "broke = []\n"
        "class Catch(logging.Handler):\n"
        "    def emit(self, record):\n"
        "        broke.append(record.getMessage())\n"
        "logging.getLogger('forecasting.pool').addHandler(Catch(logging.WARNING))\n"
        "ds = pd.date_range('2023-01-01', periods=12, freq='MS')\n"
        "series = {k: pd.DataFrame({'ds': ds, 'y': 100.0 + np.arange(12) * i}) for i, k in enumerate('ab')}\n"
        "out = forecast_many(series, horizon=2, origins=1, processes=2)\n"
        "assert list(out) == ['a', 'b'], out\n"
        "assert not broke, broke\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(script)], cwd=root, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
