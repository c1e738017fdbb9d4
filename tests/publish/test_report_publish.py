"""The latest report is published with the warehouse, switched by one rename, and follows a rollback."""

import json
import os

from salesos.publish.report import report_pages, report_path
from salesos.publish.versions import list_versions, publish_set, recover, rollback


def _report(tmp_path, run_id, text):
    """A report folder as the pipeline writes it into the run folder."""
    folder = tmp_path / "runs" / run_id / "report"
    folder.mkdir(parents=True)
    (folder / "index.html").write_text(text)
    (folder / "manifest.json").write_text(json.dumps({"pages": ["index.html"]}))
    return folder


def _publish(tmp_path, run_id, text, keep=5):
    build = tmp_path / "build" / run_id / "wh.duckdb"
    build.parent.mkdir(parents=True)
    build.write_text(f"warehouse of {run_id}")
    return publish_set(build, tmp_path / "wh.duckdb", tmp_path, run_id, "2026-10-31", keep=keep,
                       report=_report(tmp_path, run_id, text))


def test_the_latest_report_is_a_link_to_the_live_versions_pages(tmp_path):
    wh = tmp_path / "wh.duckdb"
    v1 = _publish(tmp_path, "r1", "report one")
    assert (report_path(wh) / "index.html").read_text() == "report one"
    assert report_path(wh).is_symlink() and not os.path.isabs(os.readlink(report_path(wh)))
    v2 = _publish(tmp_path, "r2", "report two")
    assert (report_path(wh) / "index.html").read_text() == "report two"
    assert os.readlink(report_path(wh)) == report_pages(wh, v2.version_id).name
    # the pages just replaced stay for a reader who has them open; older ones go
    _publish(tmp_path, "r3", "report three")
    kept = sorted(p.name for p in report_path(wh).parent.iterdir() if not p.is_symlink())
    assert kept == sorted([report_pages(wh, v2.version_id).name, report_pages(wh, "000003_r3").name])
    assert not report_pages(wh, v1.version_id).exists()
    assert not [p for p in report_path(wh).parent.iterdir() if p.name.startswith(".staging-")]


def test_rollback_shows_the_versions_report_and_rebuilds_it_when_gone(tmp_path):
    wh = tmp_path / "wh.duckdb"
    for i in range(4):
        _publish(tmp_path, f"r{i}", f"report {i}")
    rollback(wh, tmp_path)  # to r2: its pages are still beside the link
    assert (report_path(wh) / "index.html").read_text() == "report 2"
    built = []

    def builder(version, out):
        built.append(version.run_id)
        out.mkdir(parents=True)
        (out / "index.html").write_text(f"rebuilt {version.run_id}")
        (out / "manifest.json").write_text(json.dumps({"pages": ["index.html"]}))

    # r1's pages beside the link were pruned, its run's report is there: that is used
    rollback(wh, tmp_path, list_versions(wh, tmp_path)[1].version_id, report_builder=builder)
    assert (report_path(wh) / "index.html").read_text() == "report 1" and not built
    # r0's run folder is gone: the builder writes it from the kept version
    (tmp_path / "runs" / "r0" / "report" / "index.html").unlink()
    rollback(wh, tmp_path, list_versions(wh, tmp_path)[0].version_id, report_builder=builder)
    assert built == ["r0"] and (report_path(wh) / "index.html").read_text() == "rebuilt r0"
    assert wh.read_text() == "warehouse of r0"


def test_a_publish_killed_after_its_commit_is_finished_report_included(tmp_path, monkeypatch):
    import salesos.publish.versions as versions

    wh = tmp_path / "wh.duckdb"
    _publish(tmp_path, "r1", "report one")
    real_replace, calls = os.replace, []

    def killed(src, dst):  # the kill lands after the warehouse is switched, before the report link is
        if str(dst) == str(report_path(wh)):
            raise KeyboardInterrupt("killed")
        calls.append(dst)
        return real_replace(src, dst)

    monkeypatch.setattr(versions.os, "replace", killed)
    try:
        _publish(tmp_path, "r2", "report two")
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(versions.os, "replace", real_replace)
    assert wh.read_text() == "warehouse of r2" and (report_path(wh) / "index.html").read_text() == "report one"
    assert recover(wh, tmp_path) == "rolled forward"
    assert (report_path(wh) / "index.html").read_text() == "report two"
