"""What `salesos run` shows while it runs: a progress bar per step on a terminal, one log line per step otherwise.

The steps report through a `StepProgress` (salesos.pipeline passes one to each step of `run_all`): the load
counts files, bytes and rows as each export is loaded (rows per second), the build counts dbt's nodes as dbt
reports each one done (models, tests, snapshots), the other steps only start and end. A `Reporter` shows them:
`BarReporter` (rich, on a terminal), `LineReporter` (one line per step when it ends: logs, CI, a pipe) or
`Reporter` itself (nothing: the Airflow tasks and library callers).
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

# dbt's line for a finished node: "18:26:17  3 of 404 OK created sql view model staging.stg_crm__leads ... [OK in
# 0.95s]" (the START lines and the on-run-end hook's "1 of 1" are not nodes of the build)
_DBT_DONE = re.compile(r"\b(\d+) of (\d+) (OK|PASS|WARN|ERROR|FAIL|SKIP|NO-OP)\b(.*)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def dbt_node_done(line: str) -> tuple[int, int, str] | None:
    """(index, total, kind) of a node dbt reports done on `line`, kind: model, test, snapshot, seed or other."""
    m = _DBT_DONE.search(_ANSI.sub("", line))
    if m is None or m.group(4).lstrip().startswith("hook"):
        return None
    status, rest = m.group(3), m.group(4)
    words = rest.split()
    kind = next((k for k, word in (("snapshot", "snapshotted"), ("seed", "seed"), ("model", "model"))
                 if word in words), None)
    if kind is None:
        kind = "test" if status in ("PASS", "WARN", "FAIL") else "other"
    return int(m.group(1)), int(m.group(2)), kind


@dataclass
class StepProgress:
    """One step's progress: how much of its total is done, and the rows it has handled."""

    name: str
    reporter: Reporter
    started: float = field(default_factory=time.perf_counter)
    total: float | None = None
    done: float = 0.0
    unit: str = ""
    rows: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    def set_total(self, total: float, unit: str) -> None:
        self.total, self.unit = float(total), unit
        self.reporter.updated(self)

    def advance(self, amount: float = 1.0, *, rows: int = 0, kind: str | None = None) -> None:
        self.done += amount
        self.rows += rows
        if kind:
            self.counts[kind] += 1
        self.reporter.updated(self)

    def dbt_line(self, line: str) -> None:
        """Feed one line of dbt's output: a finished node advances the step."""
        node = dbt_node_done(line)
        if node is None:
            return
        _, total, kind = node
        if self.total != total:
            self.set_total(total, "nodes")
        self.advance(kind=kind)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def rows_per_second(self) -> float:
        return self.rows / self.elapsed if self.elapsed > 0 else 0.0

    def detail(self) -> str:
        """What the step has done so far, in a few words (rows and their rate, dbt's nodes by kind)."""
        parts = []
        if self.rows:
            parts.append(f"{self.rows:,} rows ({self.rows_per_second():,.0f} rows/s)")
        if self.counts:
            parts.append(", ".join(f"{n:,} {kind}{'s' if n != 1 else ''}" for kind, n in sorted(self.counts.items())))
        return "; ".join(parts)


def step_summary(step: str, result: dict[str, Any] | None) -> str:
    """The one-line result of a finished step, from what the step returned."""
    r = result or {}
    if step == "extract":
        read = r.get("rows_read", {})
        return f"{sum(read.values()):,} rows read from {len(read)} exports"
    if step == "validate":
        return f"{r.get('expectations', 0):,} expectations, {len(r.get('warnings', []))} warnings"
    if step == "build":
        return f"{r.get('models', 0):,} models built, {r.get('tests_passed', 0):,} tests passed"
    if step == "forecast":
        return f"{r.get('series', 0):,} series, {r.get('selected_rows', r.get('rows', 0)):,} forecast rows"
    if step == "publish":
        return f"version {r.get('version', '?')}"
    return ""


class Reporter:
    """Shows nothing; the base of the reporters (a step's start, its updates, its end)."""

    def start(self, name: str) -> StepProgress:
        step = StepProgress(name, self)
        self.started(step)
        return step

    def started(self, step: StepProgress) -> None:
        """A step began."""

    def updated(self, step: StepProgress) -> None:
        """A step moved on."""

    def finished(self, step: StepProgress, summary: str, ok: bool = True) -> None:
        """A step ended (ok false: it failed)."""

    def close(self) -> None:
        """The run ended."""


def _line(step: StepProgress, summary: str, ok: bool) -> str:
    said = "; ".join(s for s in (summary, step.detail()) if s)
    if not ok:
        return f"{step.name:<9} failed after {step.elapsed:.1f}s" + (f" ({said})" if said else "")
    return f"{step.name:<9} done in {step.elapsed:.1f}s" + (f": {said}" if said else "")


class LineReporter(Reporter):
    """One line per step when it ends (no terminal: a log, CI, a pipe); a failed step's line is the run's error."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def finished(self, step: StepProgress, summary: str, ok: bool = True) -> None:
        if not ok:
            return  # the run's failure message is the failed step's one line (salesos.failures)
        out = self.stream or sys.stderr
        print(_line(step, summary, ok), file=out, flush=True)


class BarReporter(Reporter):
    """A progress bar per step on a terminal (rich): files and rows/s for the load, dbt's nodes for the build."""

    def __init__(self, stream: TextIO | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

        self.console = Console(file=stream or sys.stderr, force_terminal=True)
        self.progress = Progress(
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("{task.fields[step]:<9}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.tasks: dict[str, Any] = {}

    def started(self, step: StepProgress) -> None:
        self.tasks[step.name] = self.progress.add_task(step.name, total=None, step=step.name, detail="")

    def updated(self, step: StepProgress) -> None:
        task = self.tasks.get(step.name)
        if task is None:
            return
        shown = f"{int(step.done):,}/{int(step.total):,} {step.unit}" if step.total else ""
        detail = "  ".join(s for s in (shown, step.detail()) if s)
        self.progress.update(task, total=step.total, completed=step.done, detail=detail)

    def finished(self, step: StepProgress, summary: str, ok: bool = True) -> None:
        task = self.tasks.get(step.name)
        if task is None:
            return
        total = step.total or 1.0
        text = "; ".join(s for s in (summary, step.detail()) if s)
        self.progress.update(task, total=total, completed=total if ok else step.done,
                             detail=text if ok else f"[red]failed[/] {text}")
        self.progress.stop_task(task)

    def close(self) -> None:
        self.progress.stop()


def reporter_for(stream: TextIO, *, bars: bool | None = None) -> Reporter:
    """Bars when `stream` is a terminal (or `bars` says so), one line per step otherwise."""
    if bars is None:
        bars = stream.isatty()
    return BarReporter(stream) if bars else LineReporter(stream)
