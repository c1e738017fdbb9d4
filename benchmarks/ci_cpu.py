"""A pytest plugin for benchmarks/ci_time.py: the CPU seconds of every test phase, on the worker that ran it.

The machine CI runs on is shared, so wall time rises with the load while CPU time much less. Each phase's
CPU time (this process's user + system, plus that of the child processes it waited for: dbt, Airflow,
a generator in another process) is put in the report's `user_properties` as ("cpu_seconds", s), which
xdist carries to the controller with the report. Loaded with `-p ci_cpu` (benchmarks/ on PYTHONPATH).
"""

from __future__ import annotations

import resource
from collections.abc import Generator

import pytest


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(item: pytest.Item) -> Generator[None, None, None]:
    start = _cpu()
    yield
    item.user_properties.append(("cpu_seconds", round(_cpu() - start, 3)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    yield from _timed(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    yield from _timed(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    yield from _timed(item)


def phase_cpu(user_properties: list[tuple[str, object]]) -> float | None:
    """The CPU seconds of the report's own phase: the last one recorded (earlier phases' stay in the list)."""
    values = [float(v) for k, v in user_properties if k == "cpu_seconds"]  # type: ignore[arg-type]
    return values[-1] if values else None
