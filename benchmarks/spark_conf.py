"""Spark settings for tiny data: the models of a Spark night run again under each setting, in one session.

Run after a Spark night whose schemas are still in the metastore (e.g. `benchmarks/spark_night.py --keep DIR`):

    .venv/bin/python benchmarks/spark_conf.py --data-dir DIR/wh --run-id asof_2026-10-31 --models 40

Every model's compiled SELECT (`<data>/runs/<run>/dbt_target/compiled/`, reading the night's own schemas) is
executed to the end into Spark's `noop` sink (the whole query, no write), once per variant, the variants
interleaved model by model so that the machine's load falls on each alike; each variant's total over the
models is reported per repeat and as the median. Only runtime SQL settings vary (the session is one JVM).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS: dict[str, dict[str, str]] = {
    "as before (shuffle 4, whole-stage codegen)": {"spark.sql.shuffle.partitions": "4",
                                                    "spark.sql.codegen.wholeStage": "true"},
    "shuffle partitions 1": {"spark.sql.shuffle.partitions": "1", "spark.sql.codegen.wholeStage": "true"},
    "whole-stage codegen off": {"spark.sql.shuffle.partitions": "4", "spark.sql.codegen.wholeStage": "false"},
    "shuffle 1 + codegen off": {"spark.sql.shuffle.partitions": "1", "spark.sql.codegen.wholeStage": "false"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--models", type=int, default=40, help="how many models (in name order, every k-th)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from salesos.warehouse.spark import local_session, spark_root

    compiled = sorted(p for p in (args.data_dir / "runs" / args.run_id / "dbt_target" / "compiled").rglob("*.sql")
                      if "models" in p.parts and not any(part.endswith(".yml") for part in p.parts))
    step = max(1, len(compiled) // args.models)
    chosen = compiled[::step][: args.models]
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    totals: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with local_session(spark_root(args.data_dir)) as spark:
        for _ in range(args.repeats):
            run = dict.fromkeys(VARIANTS, 0.0)
            for path in chosen:
                sql = path.read_text(encoding="utf-8")
                for name, conf in VARIANTS.items():
                    for key, value in conf.items():
                        spark.conf.set(key, value)
                    start = time.perf_counter()
                    spark.sql(sql).write.format("noop").mode("overwrite").save()
                    run[name] += time.perf_counter() - start
            for name, seconds in run.items():
                totals[name].append(round(seconds, 1))
    result = {"models": len(chosen), "repeats": args.repeats, "loadavg_before": load_before,
              "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
              "seconds_per_repeat": totals, "median_seconds": {k: statistics.median(v) for k, v in totals.items()}}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
