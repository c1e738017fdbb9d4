"""Publishing the set (warehouse, BI copy, finance exports, version record) all or nothing; real kept copies;
rollback of the whole set, one step back each time; a data dir on another filesystem; orphans of a killed
publish. Issue 22, cases 5, 6 and 7 (the process-death version is tests/test_fault_injection.py)."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from salesos.cli import main as cli_main
from salesos.pipeline import audit_staged
from salesos.publish import versions as versions_mod
from salesos.publish.versions import (
    PublishError,
    compat_path,
    finance_dir,
    list_versions,
    publish_set,
    recover,
    rollback,
)
from salesos.warehouse.storage import connect_warehouse

AS_OF = "2026-10-31"


def _build(data: Path, run_id: str, marker: int, name: str = "sales.duckdb") -> Path:
    """A build copy in the 1.4 format whose marts say which run made it (`marts.fct_x.run` = marker)."""
    path = data / "build" / run_id / name
    path.parent.mkdir(parents=True, exist_ok=True)
    con = connect_warehouse(path, compat=True)
    con.execute(f"create schema marts; create table marts.fct_x as select {marker} as run, range as id from range(3)")
    con.execute("create schema forecasts; create table forecasts.fct_forecasts as select 1.0 as yhat")
    con.close()
    return path


def _marker(path: Path) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("select max(run) from marts.fct_x").fetchall()[0][0]
    finally:
        con.close()


def _publish(data: Path, wh: Path, run_id: str, marker: int, **kw) -> versions_mod.Version:
    return publish_set(_build(data, run_id, marker), wh, data, run_id, AS_OF, bi_copy=True, finance=True,
                       audit=audit_staged, **kw)


def _seen(wh: Path, data: Path) -> tuple:
    """What each reader sees: the warehouse, the BI copy, the finance exports named current, the live record."""
    current = json.loads((data / "exports" / "current.json").read_text())
    finance = pd.read_parquet(Path(current["path"]) / "marts.fct_x.parquet")["run"].max()
    live = [v.run_id for v in list_versions(wh, data) if v.live]
    return _marker(wh), _marker(compat_path(wh)), int(finance), live


@pytest.fixture
def data(tmp_path) -> Path:
    return tmp_path / "data"


def test_kept_versions_are_read_only_copies_a_writer_cannot_change(data):
    """Case 6: a `drop table` on the published file used to change the hard-linked "backup" too."""
    wh = data / "sales.duckdb"
    _publish(data, wh, "r1", 1)
    _publish(data, wh, "r2", 2)
    kept = list_versions(wh, data)
    assert all(not v.path.samefile(wh) for v in kept)
    assert all(v.path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) == 0 for v in kept)
    con = duckdb.connect(str(wh))  # DuckDB's default: read-write
    con.execute("drop table marts.fct_x")
    con.close()
    rollback(wh, data, kept[-1].version_id)
    assert _marker(wh) == 2  # the kept version still had the table


def test_rollback_restores_the_warehouse_bi_copy_and_finance_exports_together(data, capsys):
    wh = data / "sales.duckdb"
    _publish(data, wh, "r1", 1)
    _publish(data, wh, "r2", 2)
    assert _seen(wh, data) == (2, 2, 2, ["r2"])
    assert rollback(wh, data).run_id == "r1"
    assert _seen(wh, data) == (1, 1, 1, ["r1"])
    assert finance_dir(data, AS_OF, "r2").is_dir()  # the newer run's exports are kept, just not current
    assert cli_main(["versions", "--warehouse", str(wh)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"000001_r1  as of {AS_OF}  run r1 (live)", f"000002_r2  as of {AS_OF}  run r2"]


def test_plain_rollback_steps_back_one_version_each_time_and_stops_at_the_oldest(data):
    """Case 6: repeated, it did nothing; from version 1 it went forward to 2."""
    wh = data / "sales.duckdb"
    for i in (1, 2, 3):
        _publish(data, wh, f"r{i}", i)
    assert rollback(wh, data).run_id == "r2"
    assert rollback(wh, data).run_id == "r1"
    assert _marker(wh) == 1
    with pytest.raises(ValueError, match="oldest kept version"):
        rollback(wh, data)
    assert _seen(wh, data) == (1, 1, 1, ["r1"])
    # a publish after a rollback is the newest version and live
    assert _publish(data, wh, "r4", 4).version_id == "000004_r4"
    assert _seen(wh, data) == (4, 4, 4, ["r4"])


def _other_filesystem() -> Path:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == Path(tempfile.gettempdir()).stat().st_dev:
        pytest.skip("no second filesystem (/dev/shm) on this machine")
    return Path(tempfile.mkdtemp(dir=shm, prefix="salesos-test-"))


def test_a_data_dir_on_another_filesystem_publishes(data):
    """Case 5: `OSError: Invalid cross-device link` after the BI copy and the finance exports were replaced."""
    import shutil

    other = _other_filesystem()
    try:
        wh = other / "wh" / "sales.duckdb"
        assert os.stat(other).st_dev != os.stat(data.parent).st_dev
        _publish(data, wh, "r1", 1)
        _publish(data, wh, "r2", 2)
        assert _seen(wh, data) == (2, 2, 2, ["r2"])
        assert rollback(wh, data).run_id == "r1"
        assert _seen(wh, data) == (1, 1, 1, ["r1"])
    finally:
        shutil.rmtree(other)


def test_an_orphan_version_of_a_killed_publish_is_cleared_by_the_next(data):
    """Case 5: `versions/.../000003_*` left by a killed publish made every later run fail with FileExistsError."""
    wh = data / "sales.duckdb"
    _publish(data, wh, "r1", 1)
    _publish(data, wh, "r2", 2)
    orphan = data / "versions" / "sales" / "000003_r3" / "sales.duckdb"
    orphan.parent.mkdir()
    orphan.write_text("half a file")
    assert _publish(data, wh, "r3", 3).version_id == "000003_r3"
    assert _seen(wh, data) == (3, 3, 3, ["r3"])
    assert _marker(list_versions(wh, data)[-1].path) == 3


@pytest.mark.parametrize("fail_in", ["export_tables", "write_compat_copy", "audit"])
def test_a_publish_failing_before_its_commit_changes_nothing_readers_see(data, monkeypatch, fail_in):
    """Case 7: the finance exports and the BI copy were written before the swap, so a failure in between left
    finance reading numbers that were never published."""
    wh = data / "sales.duckdb"
    _publish(data, wh, "r1", 1)
    from salesos.publish import copies

    def boom(*a, **k):
        raise OSError(f"injected failure in {fail_in}")

    if fail_in == "audit":
        build = _build(data, "r2", 2)
        with pytest.raises(OSError, match="injected"):
            publish_set(build, wh, data, "r2", AS_OF, bi_copy=True, finance=True, audit=boom)
    else:
        monkeypatch.setattr(copies, fail_in, boom)
        build = _build(data, "r2", 2)
        with pytest.raises(OSError, match="injected"):
            publish_set(build, wh, data, "r2", AS_OF, bi_copy=True, finance=True, audit=audit_staged)
    assert _seen(wh, data) == (1, 1, 1, ["r1"])
    assert not finance_dir(data, AS_OF, "r2").exists()
    assert build.exists()  # back in its build folder, for a retried publish
    leftovers = [p for p in data.rglob("*") if ".staging" in p.name]
    assert leftovers == []


def test_a_publish_killed_after_its_commit_is_finished_by_the_next_command(data, monkeypatch):
    wh = data / "sales.duckdb"
    _publish(data, wh, "r1", 1)
    real_replace = os.replace

    def die_at_warehouse(src, dst):
        # the switch renames the warehouse after the version folder, the finance folder and the BI copy
        if Path(dst) == wh:
            raise KeyboardInterrupt("killed mid-switch")
        return real_replace(src, dst)

    monkeypatch.setattr(versions_mod.os, "replace", die_at_warehouse)
    with pytest.raises(KeyboardInterrupt):
        _publish(data, wh, "r2", 2)
    monkeypatch.setattr(versions_mod.os, "replace", real_replace)
    assert _marker(wh) == 1 and _marker(compat_path(wh)) == 2  # each output is wholly old or wholly new
    assert recover(wh, data) == "rolled forward"
    assert _seen(wh, data) == (2, 2, 2, ["r2"])


def test_finance_exports_of_a_published_run_are_never_overwritten(data):
    wh = data / "sales.duckdb"
    _publish(data, wh, "r1", 1)
    with pytest.raises(PublishError, match="already published"):
        _publish(data, wh, "r1", 9)
    assert _seen(wh, data) == (1, 1, 1, ["r1"])


def test_versions_written_by_the_hard_link_release_still_list_and_roll_back(data):
    """versions.json was a plain list whose last entry was the published one."""
    wh = data / "sales.duckdb"
    vdir = data / "versions" / "sales"
    for i in (1, 2):
        b = _build(data, f"r{i}", i)
        (vdir / f"00000{i}_r{i}").mkdir(parents=True)
        os.replace(b, vdir / f"00000{i}_r{i}" / "sales.duckdb")
    (data / "sales.duckdb").write_bytes((vdir / "000002_r2" / "sales.duckdb").read_bytes())
    (vdir / "versions.json").write_text(json.dumps(
        [{"version_id": f"00000{i}_r{i}", "run_id": f"r{i}", "as_of": AS_OF} for i in (1, 2)]))
    assert [v.live for v in list_versions(wh, data)] == [False, True]
    assert rollback(wh, data).run_id == "r1" and _marker(wh) == 1


def test_versions_of_a_warehouse_never_published_creates_nothing(tmp_path):
    wh = tmp_path / "nowhere" / "sales.duckdb"
    assert cli_main(["versions", "--warehouse", str(wh)]) == 0
    assert cli_main(["rollback", "--warehouse", str(wh)]) == 1
    assert not wh.parent.exists()


def test_finance_exports_never_replace_a_folder_and_refuse_a_table_that_cannot_name_a_file(data):
    from salesos.publish.copies import export_tables

    build = _build(data, "r1", 1)
    out = data / "exports" / "run=r1"
    out.mkdir(parents=True)
    (out / "marts.fct_x.csv").write_text("what finance already has")
    with pytest.raises(FileExistsError, match="never overwritten"):
        export_tables(build, out)
    assert (out / "marts.fct_x.csv").read_text() == "what finance already has"
    con = duckdb.connect(str(build))
    con.execute('create table marts."../../escaped" as select 1 as x')
    con.close()
    with pytest.raises(ValueError, match="cannot name a file"):
        export_tables(build, data / "exports" / "run=r2")
    assert not list(data.rglob("escaped*"))
