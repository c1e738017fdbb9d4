"""Time the test suite as CI runs it (`make test`) and sum the times per test file.

    .venv/bin/python benchmarks/ci_time.py [--out ci_time.json] [-- extra pytest args]

Runs pytest in this process with the Makefile's arguments (`-n 2 --dist loadfile`) and a plugin on the
controller that records every test phase as the workers report it (so a run stopped early still leaves what it
saw, one JSON line per phase in `<out>.jsonl`). Prints, and writes to `<out>`, the wall time, the load average
at start and end (the machine is shared: absolute times rise with the load, the ranking much less), and per
file: the seconds of its tests (setup, call and teardown, fixtures included), their CPU seconds (the worker's
own and its waited-for children's, from benchmarks/ci_cpu.py: what to compare before/after on a loaded
machine), when its first test was reported and its last, and on which worker. The longest file, or a long
file started late, sets the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ci_cpu import phase_cpu

ROOT = Path(__file__).resolve().parents[1]
CI_ARGS = ["-n", "2", "--dist", "loadfile", "-p", "no:cacheprovider", "--durations=60"]
CPU_PLUGIN = ["-p", "ci_cpu"]  # benchmarks/ci_cpu.py, importable by the workers through PYTHONPATH


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3])


class Recorder:
    """A pytest plugin: each report's phase, file, duration, outcome and worker, appended as it arrives."""

    def __init__(self, log: Path) -> None:
        self.log, self.start = log, time.time()
        log.write_text("", encoding="utf-8")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        node = getattr(report, "node", None)
        row = {"t": round(time.time() - self.start, 2), "nodeid": report.nodeid, "when": report.when,
               "duration": round(report.duration, 3), "cpu": phase_cpu(report.user_properties),
               "outcome": report.outcome,
               "worker": getattr(getattr(node, "gateway", None), "id", "master")}
        with self.log.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")


def per_file(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Seconds, tests, first and last report and workers of each file, longest first."""
    files: dict[str, dict[str, Any]] = defaultdict(lambda: {"seconds": 0.0, "cpu_seconds": 0.0, "tests": 0,
                                                             "workers": set()})
    for r in rows:
        f = files[r["nodeid"].split("::", 1)[0]]
        f["seconds"] += r["duration"]
        f["cpu_seconds"] += r.get("cpu") or 0.0
        f["tests"] += r["when"] == "call" or (r["when"] == "setup" and r["outcome"] == "skipped")
        f["first"] = min(f.get("first", r["t"]), r["t"] - r["duration"])
        f["last"] = max(f.get("last", 0.0), r["t"])
        f["workers"].add(r["worker"])
    return sorted(({"file": k, **v, "workers": sorted(v["workers"])} for k, v in files.items()),
                  key=lambda f: -f["seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("ci_time.json"))
    parser.add_argument("pytest_args", nargs="*", help="after --: more pytest arguments")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()
    log = args.out.with_suffix(".jsonl")
    os.chdir(ROOT)  # the rootdir, its conftest and testpaths
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent),
                                                             os.environ.get("PYTHONPATH")]))
    load_start, t0, cpu0 = _load(), time.time(), os.times()
    code = pytest.main([*CI_ARGS, *CPU_PLUGIN, *args.pytest_args], plugins=[Recorder(log)])
    wall, load_end, cpu1 = time.time() - t0, _load(), os.times()
    # everything the run used: the controller and, once they exit, the workers and what they started
    total_cpu = sum(getattr(cpu1, k) - getattr(cpu0, k) for k in ("user", "system", "children_user",
                                                                   "children_system"))
    rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    files = per_file(rows)
    result = {"exit_code": int(code), "wall_seconds": round(wall, 1), "cpu_seconds": round(total_cpu, 1),
              "load_start": load_start, "load_end": load_end, "files": files}
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"\nwall {wall:.0f} s, cpu {total_cpu:.0f} s, exit {int(code)}, load {load_start} -> {load_end}")
    print(f"{'file':64} {'s':>7} {'cpu s':>7} {'tests':>5} {'from':>6} {'to':>6} workers")
    for f in files[:40]:
        print(f"{f['file']:64} {f['seconds']:7.1f} {f['cpu_seconds']:7.1f} {f['tests']:5d} {f['first']:6.0f} "
              f"{f['last']:6.0f} {','.join(f['workers'])}")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
