"""Benchmark of a night's forecast step (forecast, projection and the dbt builds after them), wall time.

Issue 20 made the two dbt builds that followed the forecast (the track-record rescoring after the forecast,
the projection marts after the projection) one build run once after both. This times `pipeline.forecast`
(plan, chunks, store, projection and those dbt builds) of one first night, in a child process, and counts
the dbt invocations in it and their own seconds:

    .venv/bin/python benchmarks/forecast_dbt_builds.py --scales XS S --out /tmp/forecast_dbt.json

(XS is the digest test's sample, seed 7, default settings unless --settings.)

The steps before it (extract, validate, build) run first, untimed. To compare with the code before a change,
run the same script with `PYTHONPATH` set to a checkout of that code (`git archive <rev> | tar -x -C DIR`):
then `salesos`, `forecasting` and its `dbt_project` are imported from DIR. Other processes on the machine
disturb the times: compare runs made one after the other, and say so.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

AS_OF = date(2026, 10, 31)
SEED = 7  # the digest sample's


def _child(ctx_json: str, out: str) -> None:
    """Time pipeline.forecast in this process, counting the dbt runs inside it."""
    from salesos import pipeline
    from salesos.run_context import RunContext
    from salesos.transform import dbt_build

    ctx = RunContext.from_dict(json.loads(ctx_json))
    calls: list[dict] = []
    run_dbt = dbt_build.run_dbt

    def counted(args: list[str], **kwargs: object) -> dbt_build.DbtResult:
        start = time.perf_counter()
        result = run_dbt(args, **kwargs)  # type: ignore[arg-type]
        calls.append({"select": " ".join(args), "seconds": round(time.perf_counter() - start, 2),
                      "models": result.models})
        return result

    dbt_build.run_dbt = counted  # the pipeline imports run_dbt from the module when it calls it
    start = time.perf_counter()
    pipeline.forecast(ctx)
    wall = time.perf_counter() - start
    Path(out).write_text(json.dumps({"forecast_s": round(wall, 2), "dbt_runs": calls,
                                     "dbt_s": round(sum(c["seconds"] for c in calls), 2)}))


def bench(scale: str, data_dir: Path, settings: Path | None) -> dict:
    from salesos import pipeline
    from salesos.generate import generate
    from salesos.run_context import RunContext
    from salesos.settings import PROJECT_ROOT

    exports = data_dir / f"exports_{scale}_{SEED}"
    if not (exports / ".generated").exists():
        shutil.rmtree(exports, ignore_errors=True)
        generate(exports, scale=scale, seed=SEED, as_of=AS_OF)
        (exports / ".generated").touch()
    work = data_dir / f"run_{scale}"
    shutil.rmtree(work, ignore_errors=True)
    ctx = RunContext.create(as_of=AS_OF, exports=exports, warehouse=work / "salesos.duckdb", run_id="bench",
                            settings_file=settings)
    for step in (pipeline.extract, pipeline.validate, pipeline.build):
        step(ctx)
    out = work / "forecast_bench.json"
    subprocess.run([sys.executable, __file__, "--child", json.dumps(ctx.to_dict()), str(out)], check=True)
    result = {"scale": scale, "code": str(PROJECT_ROOT), **json.loads(out.read_text())}
    print(json.dumps(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    """Time the forecast step of a first night at each scale; write the results as JSON."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--scales", nargs="+", default=["XS"])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/salesos-forecast-bench"))
    parser.add_argument("--settings", type=Path, help="settings YAML (default: config/salesos.yml)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    args.data_dir.mkdir(parents=True, exist_ok=True)
    results = [bench(scale, args.data_dir, args.settings) for scale in args.scales]
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
