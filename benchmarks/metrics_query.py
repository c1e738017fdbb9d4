"""How long `salesos metrics` takes on a published warehouse: the command end to end, and queries in one process.

    .venv/bin/python benchmarks/metrics_query.py --warehouse data/warehouse/salesos.duckdb [--repeat 5] [--out F.md]

Each CLI run is a fresh process (Python, MetricFlow's imports, the manifest parsed, the query planned and run), as a
user or a scheduled export sees it; the in-process numbers are one SemanticLayer answering query after query, as a
notebook or a service would. Medians of --repeat runs; the machine's other load shows in them, so compare numbers of
one run only.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUERIES = [
    ("bookings by fiscal quarter and team", ["bookings", "quota", "quota_attainment", "win_rate"],
     ["metric_time__fiscal_quarter", "team__team_name"]),
    ("win rate per rep and month", ["win_rate", "win_rate_by_amount"], ["rep", "metric_time__month"]),
    ("coverage per region and fiscal year", ["pipeline_coverage"], ["region", "metric_time__fiscal_year"]),
    ("lead response per rep and month", ["lead_response_hours_median"], ["rep", "metric_time__month"]),
    ("forecast error per level and model", ["forecast_wape", "forecast_bias"],
     ["forecast_score__level", "forecast_score__model"]),
]


def _median_seconds(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    from salesos.semantic import SemanticLayer

    salesos = str(Path(sys.executable).with_name("salesos"))
    lines = [f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, warehouse {args.warehouse}, median of {args.repeat}",
             "", "| query | CLI, fresh process (s) | in process, warm (s) | rows |", "| --- | --- | --- | --- |"]
    with SemanticLayer(args.warehouse) as layer:
        t0 = time.perf_counter()
        layer.engine  # noqa: B018 - build the engine once (manifest parsed, semantic models read)
        setup = time.perf_counter() - t0
        for name, metrics, group_by in QUERIES:
            cmd = [salesos, "metrics", "query", "--warehouse", str(args.warehouse), "--metrics", ",".join(metrics),
                   "--group-by", ",".join(group_by), "--csv"]
            cli = _median_seconds(lambda cmd=cmd: subprocess.run(cmd, check=True, capture_output=True), args.repeat)
            warm = _median_seconds(lambda m=metrics, g=group_by: layer.query(m, g), args.repeat)
            rows = len(layer.query(metrics, group_by).rows)
            lines.append(f"| {name} | {cli:.2f} | {warm:.3f} | {rows:,} |")
    lines += ["", f"Engine set-up in process (manifest parsed, MetricFlow engine built): {setup:.2f} s."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
