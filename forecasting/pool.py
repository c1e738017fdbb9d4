"""Many series at once: `forecast` for each in a 'spawn' process pool, results independent of its size."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context

import pandas as pd

from forecasting.methods import default_candidates, primary_prophet_name, with_seasonal_naive
from forecasting.prophet_fit import DEFAULT_PROPHET_BACKEND, DEFAULT_QUARTER_END_MONTHS
from forecasting.select import Selection, backtest_track, forecast

log = logging.getLogger(__name__)


@dataclass
class SeriesForecast:
    """One series' forecast rows, the selection record that produced them, and its backtest track record.

    `track` (`backtest_track`) holds the out-of-sample backtest forecasts of the choice and of the primary
    Prophet; Prophet's own forecast on the full history is in `selection.companions`.
    """

    forecast: pd.DataFrame
    selection: Selection
    track: pd.DataFrame = field(default_factory=pd.DataFrame)


def _init_worker(temp_root: str) -> None:
    """Give each worker its own temp folder (cmdstanpy's files go there) and silence Stan logging."""
    folder = tempfile.mkdtemp(prefix=f"worker-{os.getpid()}-", dir=temp_root)
    os.environ["TMPDIR"] = folder  # this worker process's own start-up (tests/test_lint.py: ENVIRONMENT_WRITES)
    tempfile.tempdir = folder
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    logging.getLogger("cmdstanpy").setLevel(logging.CRITICAL)


@contextlib.contextmanager
def main_script_hidden() -> Iterator[None]:
    """Stop 'spawn' workers from re-running the parent's main script while the pool starts them.

    Spawned workers re-execute `__main__` by path unless it was started with `-m`. Under Airflow that script is
    `bin/airflow`, whose import configures Airflow's ORM from a database URL the task runner deliberately
    blanks, so every worker died before its first series (BrokenProcessPool). Our worker functions live in this
    importable module, so the workers never need the parent's main script.
    """
    import sys
    import types

    saved = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = saved


def _forecast_task(args: tuple[str, pd.DataFrame, int, int, tuple[int, ...], str, str]) -> tuple[str, SeriesForecast]:
    key, history, horizon, origins, qe_months, grid, backend = args
    cands = with_seasonal_naive(default_candidates(qe_months, grid, prophet_backend=backend))
    primary = primary_prophet_name()
    fc, sel = forecast(history, horizon, origins, cands, also=(primary,))
    kept = [sel.candidate] + [c for c in cands if c.name == primary and c.name != sel.model]
    return key, SeriesForecast(fc, sel, backtest_track(history, sel, [c for c in kept if c is not None]))


def forecast_many(series: Mapping[str, pd.DataFrame], horizon: int, origins: int = 6,
                  processes: int | None = None,
                  quarter_end_months: Sequence[int] = DEFAULT_QUARTER_END_MONTHS,
                  progress: Callable[[int, int], None] | None = None,
                  prophet_grid: str = "full",
                  prophet_backend: str = DEFAULT_PROPHET_BACKEND) -> dict[str, SeriesForecast]:
    """`forecast` for every series, in a 'spawn' process pool (Stan and forked threads do not mix).

    Keys keep the input order. Results are identical for any `processes` (1 runs in this process): each series
    is computed alone and deterministically. Workers write cmdstan files under one temp root removed at the end,
    so a long run cannot fill the disk even if a worker dies. Workers do not re-run the caller's main script
    (see `main_script_hidden`), so this is safe to call from Airflow tasks and unguarded scripts alike.
    """
    qe = tuple(int(m) for m in quarter_end_months)
    tasks = [(key, hist, horizon, origins, qe, prophet_grid, prophet_backend) for key, hist in series.items()]
    results: dict[str, SeriesForecast] = {}
    n_proc = processes if processes is not None else (os.cpu_count() or 1)
    n_proc = max(1, min(n_proc, len(tasks)))
    if n_proc == 1:
        for i, task in enumerate(tasks, 1):
            key, res = _forecast_task(task)
            results[key] = res
            if progress:
                progress(i, len(tasks))
        return results
    temp_root = tempfile.mkdtemp(prefix="salesos-forecast-")
    try:
        try:
            with main_script_hidden(), ProcessPoolExecutor(max_workers=n_proc, mp_context=get_context("spawn"),
                                     initializer=_init_worker, initargs=(temp_root,)) as pool:
                # Longest histories first, one series per task: a series' cost grows with its length, and
                # with chunks of 1/16 of the series (the earlier split, in plan order) one worker was often
                # left with a last chunk of long series while the other idled.
                ordered = sorted(tasks, key=lambda task: -len(task[1]))
                for i, (key, res) in enumerate(pool.map(_forecast_task, ordered, chunksize=1), 1):
                    results[key] = res
                    if progress:
                        progress(i, len(tasks))
        except BrokenProcessPool as exc:
            # A worker killed from outside (out of memory, a host's process limits): finish the remaining series
            # in this process rather than fail the night; results are the same, only slower.
            log.warning("forecast process pool broke (%s); forecasting %d remaining series in-process",
                        exc, len(tasks) - len(results))
            for task in tasks:
                if task[0] not in results:
                    key, res = _forecast_task(task)
                    results[key] = res
    finally:
        shutil.rmtree(temp_root, ignore_errors=True)
    return {key: results[key] for key, _ in series.items()}
