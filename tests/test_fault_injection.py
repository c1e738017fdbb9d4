"""A run killed at every step boundary and at every file operation of its publish: readers see the old set
or the new set, and the next run succeeds (issue 22).

Each kill is a real process death: `salesos run` (or the publish step alone, as an Airflow retry would run
it) in a child process whose step function, or whose Nth `os.replace` / `os.rename` / `shutil.copyfile`
inside publish, calls `os._exit`. No `finally`, no `except` of the run gets to clean up. The data folder
holds a `'` in its name (case 12) and, where the machine has one, the warehouse sits on another filesystem
than the data folder (case 5). Marked e2e: one real published night first, then the kills.

The publish's file operations (46 on this tiny sample: the report's pages and assets are copied file by file,
twice) are first traced in one uninterrupted publish, each named by the code path doing it (`_kind`). The
default run kills before the first and the last operation of each kind and before every rename of the switch
(24 kills); `make test-slow` (`--run-slow`) kills before every one. Both lists follow from the trace, not from
chance: the same on every run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from salesos import pipeline
from salesos.cli import main as cli_main
from salesos.publish.versions import JOURNAL, compat_path, list_versions, versions_dir
from salesos.run_context import RunContext
from tests.conftest import ACCOUNTS, OPPORTUNITIES, QUOTAS, USERS, _opp, write_csv

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = Path(__file__).with_name("fast_settings.yml")
AS_OF = "2026-10-31"
KILLED = 77

# In the child: kill inside extract's load, at the start of a step, or before the Nth file operation of
# publish; then run `salesos run` (argv as JSON), or steps of a run one after the other as Airflow tasks do
# (a RunContext as JSON, the step names after it), dying after the last one when asked.
CHILD = r"""
import json, os, shutil, sys
point, how, arg, steps = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
from salesos import pipeline

def die(*a, **k):
    os._exit(77)

if point == "extract":
    pipeline.load_raw = die  # mid-extract: archive written, build copy open
elif point in ("validate", "build", "forecast", "publish"):
    setattr(pipeline, point, die)
elif point.startswith(("publish:", "trace:")):
    # publish:N dies before the Nth file operation; trace:FILE writes one JSON line per operation to FILE
    # (what it is, its destination and the salesos functions doing it, innermost first) and dies nowhere
    kill = int(point.split(":", 1)[1]) if point.startswith("publish:") else 0
    trace = open(point.split(":", 1)[1], "w", encoding="utf-8") if not kill else None
    count = [0]
    package = os.path.dirname(pipeline.__file__) + os.sep

    def counting(fn, name):
        def wrapper(*a, **k):
            count[0] += 1
            if count[0] == kill:
                os._exit(77)
            if trace is not None:
                frame, callers = sys._getframe(1), []
                while frame is not None and len(callers) < 2:
                    if frame.f_code.co_filename.startswith(package):
                        callers.append(frame.f_code.co_name)
                    frame = frame.f_back
                trace.write(json.dumps({"n": count[0], "op": name, "dst": str(a[1] if len(a) > 1 else k["dst"]), "callers": callers}) + "\n")
                trace.flush()
            return fn(*a, **k)
        return wrapper

    os.replace, os.rename = counting(os.replace, "replace"), counting(os.rename, "rename")
    shutil.copyfile = counting(shutil.copyfile, "copyfile")
if how == "cli":
    from salesos.cli import main
    sys.exit(main(json.loads(arg)))
from salesos.run_context import RunContext
ctx = RunContext.from_dict(json.loads(arg))
for step in steps:
    getattr(pipeline, step)(ctx)
if how == "steps, then die":
    os._exit(77)
"""


def _child(point: str, how: str, arg: str, *steps: str) -> int:
    proc = subprocess.run([sys.executable, "-c", CHILD, point, how, arg, *steps], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode in (0, KILLED), proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.returncode


def _count(path: Path) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("select count(*) from marts.fct_opportunities").fetchall()[0][0]
    finally:
        con.close()


class World:
    """The data folder and the warehouse folder (maybe on two filesystems), and what readers see there."""

    def __init__(self, data: Path, wh_root: Path, exports: Path) -> None:
        self.data, self.wh_root, self.exports = data, wh_root, exports
        self.wh = wh_root / "sales.duckdb"

    def run_args(self, run_id: str | None = None) -> list[str]:
        return ["run", "--exports", str(self.exports), "--warehouse", str(self.wh), "--data-dir", str(self.data),
                "--as-of", AS_OF, "--settings", str(SETTINGS)] + ([f"--run-id={run_id}"] if run_id else [])

    def seen(self) -> tuple[int, int, int, str]:
        """(deals in the warehouse, in the BI copy, in the finance exports named current, the live run)."""
        current = json.loads((self.data / "exports" / "current.json").read_text(encoding="utf-8"))
        finance = len(pd.read_parquet(Path(current["path"]) / "marts.fct_opportunities.parquet"))
        live = [v.run_id for v in list_versions(self.wh, self.data) if v.live]
        assert len(live) == 1
        return _count(self.wh), _count(compat_path(self.wh)), finance, live[0]

    def debris(self) -> list[Path]:
        return [p for root in (self.data, self.wh_root) for p in root.rglob("*")
                if ".staging" in p.name or p.name.endswith((".partial", ".tmp"))]

    def snapshot(self, to: Path) -> None:
        for name, root in (("data", self.data), ("wh", self.wh_root)):
            shutil.copytree(root, to / name, symlinks=True)

    def restore(self, snap: Path) -> None:
        for name, root in (("data", self.data), ("wh", self.wh_root)):
            shutil.rmtree(root)
            shutil.copytree(snap / name, root, symlinks=True)


@pytest.fixture
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("o'brien")  # a quote in every path of the run (case 12)
    shm = Path("/dev/shm")
    other_fs = shm.is_dir() and shm.stat().st_dev != base.stat().st_dev
    wh_root = Path(tempfile.mkdtemp(dir=shm, prefix="salesos-o'brien-")) if other_fs else base / "warehouse"
    exports = base / "exports"
    exports.mkdir()
    write_csv(exports / "User.csv", USERS)
    write_csv(exports / "Account.csv", ACCOUNTS)
    write_csv(exports / "Opportunity.csv", OPPORTUNITIES)
    write_csv(exports / "quotas.csv", QUOTAS)
    w = World(base / "data", wh_root / "wh", exports)
    w.data.mkdir()
    w.wh_root.mkdir(parents=True)
    try:
        assert cli_main(w.run_args()) == 0  # the old set: 4 deals, run asof_2026-10-31
        # the next night's exports carry a fifth deal
        write_csv(exports / "Opportunity.csv", [*OPPORTUNITIES, _opp(
            "006E", "005B", "001A", "Prospecting", "700.00", "2027-01-15", "2026-10-20T10:00:00.000Z", "false",
            "false", "10")])
        yield w
    finally:
        if other_fs:
            shutil.rmtree(wh_root, ignore_errors=True)


OLD = (4, 4, 4, "asof_2026-10-31")


def _kind(op: dict) -> str:
    """What a traced file operation is, named by the code path doing it: the operation and the two innermost
    salesos functions. The report's 18 page and asset copies of its staging are one kind (one copytree), the
    version record's and the finance pointer's staged writes another, the journal's write (the commit) a third.
    A rename of the switch is a kind of its own: each one changes what readers see of one output (a folder, a
    file, the report's link), and the commit comes right before the first."""
    if op["callers"][:1] == ["_switch"]:
        return f"_switch:{op['n']}"
    return f"{op['op']}:{'<'.join(op['callers'])}"


def kill_points(trace: list[dict], every: bool) -> list[int]:
    """The operations to kill before: all of them, or the first and the last of each kind (always the same)."""
    if every:
        return [op["n"] for op in trace]
    by_kind: dict[str, list[int]] = {}
    for op in trace:
        by_kind.setdefault(_kind(op), []).append(op["n"])
    return sorted({n for ns in by_kind.values() for n in (ns[0], ns[-1])})


def test_kill_points_take_the_first_and_last_of_each_kind_and_every_switch_rename() -> None:
    assets, commit, switch = ["_copy_assets", "write_report"], ["_write_json", "_commit_and_switch"], [
        "_switch", "_commit_and_switch"]
    trace = [{"n": 1, "op": "copyfile", "dst": "/r/a.js", "callers": assets},
             {"n": 2, "op": "copyfile", "dst": "/r/b.css", "callers": assets},
             {"n": 3, "op": "copyfile", "dst": "/r/c.js", "callers": assets},
             {"n": 4, "op": "replace", "dst": "/r", "callers": ["write_report", "build_report"]},
             {"n": 5, "op": "copyfile", "dst": "/w/x.duckdb", "callers": ["_copy_file", "publish_set"]},
             {"n": 6, "op": "replace", "dst": "/v/publish.json", "callers": commit},
             {"n": 7, "op": "replace", "dst": "/v/1", "callers": switch},
             {"n": 8, "op": "replace", "dst": "/w/a.duckdb", "callers": switch},
             {"n": 9, "op": "replace", "dst": "/w/b.duckdb", "callers": switch}]
    assert kill_points(trace, every=False) == [1, 3, 4, 5, 6, 7, 8, 9]
    assert kill_points(trace, every=True) == list(range(1, 10))


@pytest.mark.parametrize("every", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["first-and-last-of-each-kind", "every-operation"])
def test_killed_at_each_step_and_each_publish_operation_readers_see_old_or_new_and_the_next_run_succeeds(
        world: World, tmp_path: Path, every: bool) -> None:
    from salesos.orchestrate import record_failure

    assert world.seen() == OLD
    # -- `salesos run` killed (its whole-run lock dies with it) leaves the old set
    assert _child("validate", "cli", json.dumps(world.run_args("killed_cli"))) == KILLED
    assert world.seen() == OLD and world.debris() == []
    # -- a run as Airflow runs it, a process per step, killed inside extract and at every step boundary;
    # each time the retried task (a new process) goes on from there
    ctx = RunContext.from_dict({
        "run_id": "manual__2026-11-01T02_00_00_00_00", "as_of": AS_OF, "exports": str(world.exports),
        "warehouse": str(world.wh), "data_dir": str(world.data), "settings_file": str(SETTINGS),
        "dbt_target": "duckdb"})
    arg = json.dumps(ctx.to_dict())
    assert _child("extract", "steps", arg, "extract") == KILLED
    assert world.seen() == OLD and world.debris() == []
    for step in ("extract", "validate", "build", "forecast"):
        assert _child("-", "steps, then die", arg, step) == KILLED, step
        assert world.seen() == OLD, step
        assert world.debris() == [], step
    assert ctx.build_warehouse.exists()  # complete: the publish task is next
    snap = tmp_path / "before-publish"
    world.snapshot(snap)
    new = (5, 5, 5, ctx.run_id)
    # -- the publish's file operations, traced in one publish that nobody kills
    traced = tmp_path / "publish-operations.jsonl"
    assert _child(f"trace:{traced}", "steps", arg, "publish") == 0
    assert world.seen() == new and world.debris() == []
    trace = [json.loads(line) for line in traced.read_text(encoding="utf-8").splitlines()]
    kinds = {_kind(op) for op in trace}
    assert len(trace) >= 40 and [op["n"] for op in trace] == list(range(1, len(trace) + 1))
    assert {"_copy_assets", "_stage_report", "_copy_file", "write_compat_copy", "_write_json", "_switch",
            "_move_in"} <= {c for op in trace for c in op["callers"][:1]}, kinds
    points = kill_points(trace, every)
    assert len(points) >= len(kinds) and points[-1] == len(trace)
    # -- killed before each of those file operations of publish: each output is wholly old or wholly new;
    # after the next command (`salesos versions` recovers) the set is old (killed before the commit) or new
    # (after it); then the retried publish task publishes the new set
    outcomes = []
    for n in points:
        world.restore(snap)
        assert _child(f"publish:{n}", "steps", arg, "publish") == KILLED, (n, trace[n - 1])
        seen = world.seen()
        assert all(s in (o, w) for s, o, w in zip(seen, OLD, new, strict=True)), (n, seen)
        committed = (versions_dir(world.wh, world.data) / JOURNAL).exists() or seen[3] == new[3]
        assert cli_main(["versions", "--warehouse", str(world.wh), "--data-dir", str(world.data)]) == 0
        recovered = world.seen()
        assert recovered == (new if committed else OLD), (n, seen, recovered)
        assert world.debris() == [], n
        outcomes.append((n, seen, recovered))
        pipeline.publish(ctx)
        assert world.seen() == new, n
    assert len(outcomes) >= 12  # every staged output and every rename of the switch was a kill point
    assert {r for _, _, r in outcomes} == {OLD, new}  # some kills before the commit, some after
    assert any(s not in (OLD, new) for _, s, _ in outcomes)  # mid-switch: outputs differ until recovered
    # -- from what the killed runs left: a `salesos run` refuses to start beside the Airflow run (its build
    # copy waits for the publish task) until Airflow records that run's failure; then it succeeds
    world.restore(snap)
    assert cli_main(world.run_args()) == 1
    assert world.seen() == OLD
    record_failure({"run_id": ctx.run_id, "logical_date": pipeline.datetime(2026, 10, 31),
                    "exception": "killed", "params": {"exports": str(world.exports), "warehouse": str(world.wh),
                                                      "data_dir": str(world.data), "settings": str(SETTINGS)}})
    assert cli_main(world.run_args()) == 0
    assert world.seen() == (5, 5, 5, "asof_2026-10-31.2")
    assert world.debris() == []
    assert not list((world.data / "build").iterdir())
    assert sorted(p.name for p in (world.data / "archive").iterdir()) == sorted(
        ["asof_2026-10-31", "asof_2026-10-31.2", "killed_cli", ctx.run_id])
