"""The nightly fit (`forecast_many`, primary grid, horizon 12, 6 origins, 2 processes) on a fixed sample of
synthetic series, timed for two checkouts alternately: a before/after measure that needs no warehouse.

    .venv/bin/python benchmarks/forecast_fit_sample.py --code /tmp/before --against . --series 40 --repeats 2

The series are `synthetic` below (also `benchmarks/prophet_backend_parity.py`'s) (30-72 months, growing bookings with
quarter-end peaks and 2-25% noise). Each run is a child process with that checkout on PYTHONPATH; it reports
the wall time and the CPU time of the child and its pool workers (the fair measure on a shared machine),
and the 1-minute load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def synthetic(count: int) -> list[tuple[str, str, Any]]:
    """Growing bookings with quarter-end peaks (the test series' shape), 30-72 months, noise 2-25%."""
    import numpy as np
    import pandas as pd

    out = []
    for i in range(count):
        rng = np.random.default_rng(100 + i)
        n = int(rng.integers(30, 73))
        ds = pd.date_range("2020-02-01", periods=n, freq="MS")
        level = 1000 * (1 + rng.uniform(-0.01, 0.03) * np.arange(n))
        peak = np.where(ds.month.isin([1, 4, 7, 10]), 1 + rng.uniform(0, 0.8), 1.0)
        y = np.clip(level * peak * (1 + rng.normal(0, rng.uniform(0.02, 0.25), n)), 0, None)
        out.append((f"syn{i:02d}", "SYNTHETIC", y))
    return out


def _child(count: int) -> None:
    import pandas as pd

    from forecasting.pool import forecast_many

    series = {sn: pd.DataFrame({"ds": pd.date_range("2021-01-01", periods=len(y), freq="MS"), "y": y})
              for sn, _, y in synthetic(count)}
    start = time.perf_counter()
    forecast_many(series, horizon=12, origins=6, processes=2, prophet_grid="primary")
    wall = time.perf_counter() - start
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    print(json.dumps({"fit_s": round(wall, 1), "cpu_s": round(cpu, 1), "series": len(series)}))


def run(code: Path, count: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(count)], cwd=code,
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"code": str(code), "load_1min_before": round(load, 1), "load_1min_after": round(os.getloadavg()[0], 1),
            **out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", type=Path, default=ROOT)
    parser.add_argument("--against", type=Path, default=None)
    parser.add_argument("--series", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return 0
    codes = [args.code.resolve()] + ([args.against.resolve()] if args.against else [])
    runs = []
    for _ in range(args.repeats):  # alternating: both see the same drift of the load
        for code in codes:
            runs.append(run(code, args.series))
            print(json.dumps(runs[-1]), flush=True)
    result = {"runs": runs, "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "median": {str(c): {k: statistics.median(r[k] for r in runs if r["code"] == str(c))
                                  for k in ("fit_s", "cpu_s")} for c in codes}}
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
