"""Where a Spark night's time goes: one XS night on a local Spark (`SALESOS_DBT_TARGET=spark`), timed by step.

Run from the repository root (one Spark at a time on a machine; Java 17):

    .venv/bin/python benchmarks/spark_night.py --out /tmp/spark_night.json [--second-night]

The night is the digest sample (tests/transform/mart_digests.py: XS, seed 7, tests/fast_settings.yml) with the
forecast as applyInPandas. The pipeline's Spark-side functions are wrapped (not changed) to time each piece:
every JVM start (`local_session` until the session is up), the raw/quarantine/forecasts registration
(`copy_to_spark`), each `dbt build` (`run_dbt`), the copy of the marts back (`copy_from_spark`), the forecast
chunks on Spark and the views (`publish_views`), plus each pipeline step's wall time. With `--second-night` a
second night runs on the next day's exports (tests.test_incremental.next_day_exports) into the same
warehouse and is timed the same way. The load average is recorded before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
import types
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Timings:
    """Seconds per label, summed over calls, with the number of calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, module: types.ModuleType, name: str, label: str | None = None) -> None:
        original = getattr(module, name)
        label = label or name

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - start
                self.calls[label] += 1

        setattr(module, name, timed)

    def wrap_session(self, module: types.ModuleType) -> None:
        """Time `local_session` up to the yielded session (the JVM start and the metastore)."""
        original = module.local_session

        @contextlib.contextmanager
        def timed(root: Path) -> Iterator[object]:
            start = time.perf_counter()
            with original(root) as spark:
                self.seconds["jvm start (local_session)"] += time.perf_counter() - start
                self.calls["jvm start (local_session)"] += 1
                yield spark

        module.local_session = timed

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {k: {"seconds": round(v, 1), "calls": self.calls[k]} for k, v in self.seconds.items()}


def instrument(t: Timings) -> None:
    import forecasting.spark_executor as fse
    import salesos.pipeline as pipeline
    import salesos.transform.dbt_build as dbt_build
    import salesos.warehouse.spark as spark

    t.wrap_session(spark)
    for name in ("copy_to_spark", "copy_from_spark", "publish_views"):
        t.wrap(spark, name)
    t.wrap(dbt_build, "run_dbt")
    t.wrap(fse, "forecast_chunks_on_spark")
    for step in ("extract", "validate", "build", "forecast", "publish"):
        t.wrap(pipeline, step, f"step {step}")


def night(work: Path, exports: Path, as_of: date, settings: Path) -> dict:
    from salesos.pipeline import run_all
    from salesos.run_context import RunContext

    t = Timings()
    instrument(t)
    ctx = RunContext.create(as_of=as_of, exports=exports, warehouse=work / "wh" / "salesos.duckdb",
                            settings_file=settings, dbt_target="spark")
    before = _loadavg()
    start = time.perf_counter()
    run_all(ctx)
    total = time.perf_counter() - start
    return {"run_id": ctx.run_id, "total_seconds": round(total, 1), "loadavg_before": before,
            "loadavg_after": _loadavg(), "parts": t.as_dict()}


def differing_tables(warehouse: Path) -> list[str]:
    """The marts and forecasts tables whose digest differs from the DuckDB night's recorded one (integer types by
    family, as tests/warehouse/test_spark.py compares them)."""
    from salesos.warehouse.digest import warehouse_digests
    from tests.transform.mart_digests import RECORDED

    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))["tables_integer_family"]
    current = warehouse_digests(warehouse, integer_family=True)
    return sorted(t for t in recorded.keys() | current.keys() if recorded.get(t) != current.get(t))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--second-night", action="store_true")
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    import importlib

    from salesos.generate import generate
    from tests.transform.mart_digests import AS_OF, SCALE, SEED, SETTINGS

    work = args.keep or Path(tempfile.mkdtemp(prefix="spark_night_"))
    generate(work / "exports", scale=SCALE, seed=SEED, as_of=AS_OF)
    settings = work / "settings.yml"
    shutil.copyfile(SETTINGS, settings)
    with settings.open("a", encoding="utf-8") as fh:
        fh.write("\nforecast_executor: spark\n")
    result = {"nights": [night(work, work / "exports", AS_OF, settings)]}
    result["tables_differing_from_the_duckdb_night"] = differing_tables(work / "wh" / "salesos.duckdb")
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    if args.second_night:
        from tests.test_incremental import next_day_exports

        importlib.invalidate_caches()
        day2 = AS_OF + timedelta(days=1)
        next_day_exports(work / "exports", work / "exports_2", day2)
        result["nights"].append(night(work, work / "exports_2", day2, settings))
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2))
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
