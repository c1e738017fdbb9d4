"""benchmarks/ci_time.py and its worker plugin benchmarks/ci_cpu.py: the per-file sums the CI timing reports."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


def test_each_phase_reports_its_own_cpu_seconds():
    ci_cpu = _module("ci_cpu")
    item = SimpleNamespace(user_properties=[("other", 1)])
    for hook in (ci_cpu.pytest_runtest_setup, ci_cpu.pytest_runtest_call):
        gen = hook(item)
        next(gen)
        sum(i * i for i in range(200_000))  # some CPU inside the phase
        try:
            next(gen)
        except StopIteration:
            pass
    recorded = [v for k, v in item.user_properties if k == "cpu_seconds"]
    assert len(recorded) == 2 and all(v >= 0 for v in recorded) and recorded[1] > 0
    # the report of the call phase carries the list as it stood then: its own value is the last one
    assert ci_cpu.phase_cpu(item.user_properties) == recorded[1]
    assert ci_cpu.phase_cpu([("other", 1)]) is None


def test_per_file_sums_seconds_and_cpu_and_counts_tests_once():
    ci_time = _module("ci_time")
    rows = [
        {"t": 10.0, "nodeid": "tests/a.py::t1", "when": "setup", "duration": 8.0, "cpu": 2.0, "worker": "gw0",
         "outcome": "passed"},
        {"t": 12.0, "nodeid": "tests/a.py::t1", "when": "call", "duration": 2.0, "cpu": 1.5, "worker": "gw0",
         "outcome": "passed"},
        {"t": 12.5, "nodeid": "tests/b.py::t2", "when": "setup", "duration": 0.1, "cpu": None, "worker": "gw1",
         "outcome": "skipped"},
    ]
    files = {f["file"]: f for f in ci_time.per_file(rows)}
    assert list(files) == ["tests/a.py", "tests/b.py"]  # longest first
    a = files["tests/a.py"]
    assert (a["seconds"], a["cpu_seconds"], a["tests"], a["first"], a["last"], a["workers"]) == (
        10.0, 3.5, 1, 2.0, 12.0, ["gw0"])
    assert files["tests/b.py"]["tests"] == 1 and files["tests/b.py"]["cpu_seconds"] == 0.0
