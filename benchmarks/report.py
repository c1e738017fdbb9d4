"""How long the nightly report takes to build (issue 19: "a few seconds at S"), on a published sample night.

    .venv/bin/python benchmarks/report.py --scale S [--warehouse FILE] [--repeat 5] [--out benchmarks/report.md]

Without --warehouse it first runs one night of the sample at that scale (generate, then `run_all` with
tests/fast_settings.yml: the report reads the marts, whose size the scale sets, and the projection table of a
one-quarter replay), which takes minutes. Then it builds the report of the live version `--repeat` times from
the kept read-only copy (what `salesos report` does) and records the median, the range, the pages and charts,
and the size of the folder. The machine may be shared: the timings are medians of one run, with the range.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

AS_OF = date(2026, 10, 31)
ROOT = Path(__file__).resolve().parents[1]
FAST_SETTINGS = ROOT / "tests" / "fast_settings.yml"


def sample_night(scale: str, work: Path) -> tuple[Path, float]:
    from salesos.generate import generate
    from salesos.pipeline import run_all
    from salesos.run_context import RunContext

    generate(work / "exports", scale=scale, seed=42, as_of=AS_OF)
    ctx = RunContext.create(as_of=AS_OF, exports=work / "exports", warehouse=work / "wh" / "salesos.duckdb",
                            settings_file=FAST_SETTINGS)
    started = time.perf_counter()
    run_all(ctx)
    return ctx.warehouse, time.perf_counter() - started


def measure(warehouse: Path, repeat: int, out_dir: Path) -> dict:
    from salesos.publish.report.build import find_version, report_for_version
    from salesos.publish.versions import list_versions

    version = find_version(list_versions(warehouse, warehouse.parent), None)
    seconds, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = report_for_version(version, warehouse, warehouse.parent, out_dir)
        seconds.append(time.perf_counter() - started)
    size = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds),
            "runs": repeat, "pages": result.pages, "charts": result.charts, "folder_mb": size / 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="S", choices=["XS", "S", "M"])
    parser.add_argument("--warehouse", type=Path, default=None, help="a published warehouse (default: build one)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="append the result as markdown to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="salesos-report-bench-") as tmp:
        night_s = None
        warehouse = args.warehouse
        if warehouse is None:
            warehouse, night_s = sample_night(args.scale, Path(tmp))
        r = measure(warehouse.resolve(), args.repeat, Path(tmp) / "report")
    r |= {"scale": args.scale, "night_s": night_s, "machine": f"{platform.machine()}, {platform.python_version()}"}
    print(json.dumps(r, indent=1))
    if args.out:
        line = (f"| {date.today().isoformat()} | {args.scale} | {r['median_s']:.2f} s | {r['min_s']:.2f}-"
                f"{r['max_s']:.2f} s | {r['runs']} | {r['pages']} | {r['charts']} | {r['folder_mb']:.1f} MB |\n")
        with args.out.open("a", encoding="utf-8") as fh:
            fh.write(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
