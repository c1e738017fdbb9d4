"""Publishing every output together, the last N versions kept, and a rollback that restores the same set.

What readers see is a set: the warehouse file, its BI copy (`duckdb-v1.4/<name>`), the finance exports
(`<data>/exports/as_of=<date>/run=<run_id>/`, named by `<data>/exports/current.json`), the nightly report
(`report/<stem>/`, a symbolic link to the pages of the live version, `report/.<stem>-<version_id>/`) and the
version record (`<data>/versions/<stem>/versions.json`, whose `live` names the version on show). A publish or a rollback
switches the set in three phases:

1. **stage**: every new output is written beside its target, under a `.staging-<token>` name on the target's
   own filesystem (the build copy is moved there, or copied when the data dir is on another filesystem);
2. **commit**: after the audit passed, one atomic write of the journal `publish.json` lists the renames;
3. **switch**: each rename (`os.replace`, one step per output), the version record last; the journal goes.

A run killed before the commit leaves only staging debris, which the next run (or `salesos versions` /
`rollback`) removes: readers saw the old set throughout. Killed after it, the next of them finishes the
renames from the journal: the new set. Each output on its own is always wholly old or wholly new (one
rename each); the record tells which set is live. Readers who need the set whole trust `versions.json`
(`live`) and `exports/current.json`, not the newest folder.

Kept versions are independent copies with read-only permissions: a read-write connection to the published
file (DuckDB's default) cannot change them.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salesos.publish import copies
from salesos.publish.copies import compat_path
from salesos.publish.report.paths import report_pages, report_path

log = logging.getLogger(__name__)

DEFAULT_KEEP = 5
INDEX = "versions.json"
JOURNAL = "publish.json"
FINANCE_CURRENT = "current.json"
STAGING = ".staging-"
class PublishError(RuntimeError):
    """A publish or rollback that could not be done; the published set is the one it was before."""


@dataclass(frozen=True)
class Version:
    version_id: str
    run_id: str
    as_of: str
    path: Path
    finance_exports: str | None = None
    live: bool = False


def versions_dir(warehouse: Path, data_dir: Path) -> Path:
    return data_dir / "versions" / warehouse.stem


def finance_dir(data_dir: Path, as_of: str, run_id: str) -> Path:
    return data_dir / "exports" / f"as_of={as_of}" / f"run={run_id}"


def _staging_prefix(warehouse: Path) -> str:
    """Staging names carry a short hash of the warehouse's path: two warehouses in one folder never clear
    each other's staging."""
    return f"{STAGING}{hashlib.sha256(str(warehouse).encode()).hexdigest()[:10]}-"


def _staged(target: Path, warehouse: Path, token: str) -> Path:
    """Where `target`'s next content is written: beside it, on its filesystem, under the same file name."""
    return target.parent / f"{_staging_prefix(warehouse)}{token}" / target.name


# ---------------------------------------------------------------- the index (version record)


def _read_index(vdir: Path) -> dict[str, Any]:
    p = vdir / INDEX
    if not p.exists():
        return {"live": None, "versions": [], "published_runs": []}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except ValueError as exc:  # edited by hand or torn by something else than this module
        raise PublishError(f"{p}: the version record is not valid JSON ({exc}); restore it from a backup") from exc
    if isinstance(data, list):  # the format before `live`: the newest entry was the published one
        return {"live": data[-1]["version_id"] if data else None, "versions": data,
                "published_runs": [e["run_id"] for e in data]}
    return data


def _write_json(path: Path, data: Any) -> None:
    """Written beside, flushed, renamed: a reader sees the old or the new content, never a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _version(vdir: Path, warehouse: Path, e: dict[str, Any], live: str | None) -> Version:
    return Version(e["version_id"], e["run_id"], e["as_of"], vdir / e["version_id"] / warehouse.name,
                   e.get("finance_exports"), e["version_id"] == live)


def list_versions(warehouse: Path, data_dir: Path) -> list[Version]:
    """Kept versions, oldest first; `live` marks the one readers see."""
    vdir = versions_dir(warehouse, data_dir)
    index = _read_index(vdir)
    return [v for e in index["versions"] if (v := _version(vdir, warehouse, e, index["live"])).path.exists()]


def live_version(warehouse: Path, data_dir: Path) -> Version | None:
    return next((v for v in list_versions(warehouse, data_dir) if v.live), None)


def run_was_published(warehouse: Path, data_dir: Path, run_id: str) -> bool:
    """Whether a run id has ever been published (its kept version may since have been dropped)."""
    return run_id in _read_index(versions_dir(warehouse, data_dir)).get("published_runs", [])


# ---------------------------------------------------------------- moving files safely


def _move_in(src: Path, dst: Path) -> None:
    """Move `src` to `dst` (beside its target); a copy, flushed, when they are on different filesystems."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_file(src, dst)
        src.unlink()


def _copy_file(src: Path, dst: Path) -> None:
    """An independent copy (the kernel may share blocks, copy-on-write, where the filesystem can)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    with dst.open("rb+") as fh:
        os.fsync(fh.fileno())


def _make_read_only(path: Path) -> None:
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def _switch(moves: list[list[str]]) -> None:
    """Do the journal's renames in order; a rename whose source is gone was done before a kill."""
    for src, dst in moves:
        s, d = Path(src), Path(dst)
        if not os.path.lexists(s):  # lexists: the report's staged link dangles until it is in place
            continue
        if s.is_dir() and not s.is_symlink() and d.is_dir() and not d.is_symlink():
            # a finance folder or a version folder is new by construction; one left by a killed switch is ours
            shutil.rmtree(d)
        elif s.is_symlink() and d.is_dir() and not d.is_symlink():
            shutil.rmtree(d)  # a report folder where the link goes (made by hand): the link replaces it
        os.replace(s, d)
        if s.parent.name.startswith(STAGING):  # the emptied staging folder of a file
            shutil.rmtree(s.parent, ignore_errors=True)


def _staging_debris(warehouse: Path, data_dir: Path) -> list[Path]:
    vdir = versions_dir(warehouse, data_dir)
    found: list[Path] = []
    exports = data_dir / "exports"
    for folder in (warehouse.parent, compat_path(warehouse).parent, report_path(warehouse).parent, vdir, exports):
        if folder.is_dir():
            found += [p for p in folder.iterdir() if p.name.startswith(_staging_prefix(warehouse))]
    if compat_path(warehouse).parent.is_dir():  # what the BI copy's writer left when killed
        found += list(compat_path(warehouse).parent.glob(".building-*"))
    found += list(warehouse.parent.glob(f".{warehouse.name}.rollback"))  # the rollback before this one's
    for folder, pattern in ((vdir, "*.tmp"), (exports, f"{FINANCE_CURRENT}.tmp")):
        found += list(folder.glob(pattern)) if folder.is_dir() else []
    if exports.is_dir():
        found += [p for p in exports.glob("as_of=*/run=*") if p.name.endswith((".staging", ".partial"))]
    if vdir.is_dir():
        # a version folder no record names: left by a publish killed between its copy and its record
        named = {e["version_id"] for e in _read_index(vdir)["versions"]}
        found += [p for p in vdir.iterdir() if p.is_dir() and p.name[:1].isdigit() and p.name not in named]
    return found


ORIGIN = "origin.json"


def _return_build_copy(staging: Path) -> None:
    """A publish killed before its commit had moved the build copy beside the warehouse: put it back,
    so a retried publish (an Airflow retry) has it to publish."""
    origin = staging / ORIGIN
    if not origin.is_file():
        return
    build = Path(json.loads(origin.read_text(encoding="utf-8"))["build"])
    staged = staging / build.name
    if staged.exists() and build.parent.is_dir() and not build.exists():
        _move_in(staged, build)


def recover(warehouse: Path, data_dir: Path) -> str | None:
    """Finish a publish killed after its commit, or clear one killed before; call under the warehouse lock.

    Returns what was done ("rolled forward", "cleared"), None when there was nothing to do.
    """
    vdir = versions_dir(warehouse, data_dir)
    journal = vdir / JOURNAL
    done = None
    if journal.exists():
        plan = json.loads(journal.read_text(encoding="utf-8"))
        _switch(plan["moves"])
        journal.unlink()
        log.warning("finished the publish of %s killed mid-switch (%s is live)", warehouse, plan["live"])
        done = "rolled forward"
    debris = _staging_debris(warehouse, data_dir)
    for p in debris:
        _return_build_copy(p)
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    if debris:
        log.warning("removed what a killed publish left: %s", ", ".join(str(p) for p in debris))
        done = done or "cleared"
    return done


# ---------------------------------------------------------------- publish and rollback


Audit = Callable[[dict[str, Path]], None]


def _next_number(vdir: Path, index: dict[str, Any]) -> int:
    numbers = [int(e["version_id"].split("_", 1)[0]) for e in index["versions"]]
    if vdir.is_dir():
        numbers += [int(p.name.split("_", 1)[0]) for p in vdir.iterdir() if p.name.split("_", 1)[0].isdigit()]
    return 1 + max(numbers, default=0)


def _commit_and_switch(vdir: Path, live: str, moves: list[list[str]]) -> None:
    _write_json(vdir / JOURNAL, {"live": live, "moves": moves})  # the commit point
    _switch(moves)
    (vdir / JOURNAL).unlink()


def publish_set(
    build_file: Path,
    warehouse: Path,
    data_dir: Path,
    run_id: str,
    as_of: str,
    *,
    keep: int = DEFAULT_KEEP,
    bi_copy: bool = False,
    finance: bool = False,
    audit: Audit | None = None,
    report: Path | None = None,
) -> Version:
    """Publish `build_file` as the warehouse with its BI copy, finance exports and report, all or nothing.

    `report` is the folder of the run's report pages (salesos.publish.report), published as the latest
    report beside the warehouse. `audit` is given the staged outputs (keys `warehouse`, `version`, `bi_copy`,
    `finance`, `report`) and raises to stop the publish before anything readers see has changed. Call under
    the warehouse lock.
    """
    if not build_file.exists():
        raise FileNotFoundError(f"nothing to publish: {build_file} does not exist")
    recover(warehouse, data_dir)
    vdir = versions_dir(warehouse, data_dir)
    index = _read_index(vdir)
    if run_id in index.get("published_runs", []):
        raise PublishError(f"run {run_id} was already published; a new run needs a new run id")
    version_id = f"{_next_number(vdir, index):06d}_{run_id}"
    out = finance_dir(data_dir, as_of, run_id)
    if finance and out.exists():
        raise PublishError(f"{out} exists: finance exports are never overwritten; use a new run id")
    staged: dict[str, Path] = {}
    try:
        staged["version"] = vdir / f"{_staging_prefix(warehouse)}{version_id}" / warehouse.name  # renamed whole
        _copy_file(build_file, staged["version"])
        _make_read_only(staged["version"])
        if bi_copy:
            bi_target = _staged(compat_path(warehouse), warehouse, version_id)
            staged["bi_copy"] = copies.write_compat_copy(build_file, bi_target)
        if finance:
            staged["finance"] = out.with_name(out.name + ".staging")
            copies.export_tables(build_file, staged["finance"])
        if report is not None:
            staged["report"], staged["report_link"] = _stage_report(report, warehouse, version_id, version_id)
        staged["warehouse"] = _staged(warehouse, warehouse, version_id)
        _write_json(staged["warehouse"].parent / ORIGIN, {"build": str(build_file)})
        _move_in(build_file, staged["warehouse"])
        if audit is not None:
            audit(staged)
    except BaseException:
        recover(warehouse, data_dir)  # drops what was staged; the build copy goes with the run's discard
        raise
    entry = {"version_id": version_id, "run_id": run_id, "as_of": as_of,
             "finance_exports": str(out) if finance else None}
    entries = [*index["versions"], entry]
    kept = entries[-keep:] if keep > 0 else entries
    new_index = {"live": version_id, "versions": kept,
                 "published_runs": [*index.get("published_runs", []), run_id]}
    moves = [[str(staged["version"].parent), str(vdir / version_id)]]
    if finance:
        moves.append([str(staged["finance"]), str(out)])
    if bi_copy:
        moves.append([str(staged["bi_copy"]), str(compat_path(warehouse))])
    moves.append([str(staged["warehouse"]), str(warehouse)])
    replaced_report = _live_report_pages(warehouse)
    if report is not None:
        moves += _report_moves(staged, warehouse, version_id)
    moves += _pointer_moves(warehouse, data_dir, new_index, entry, version_id)
    _commit_and_switch(vdir, version_id, moves)
    for old in entries[:-keep] if keep > 0 else []:
        shutil.rmtree(vdir / old["version_id"], ignore_errors=True)
    if report is not None:
        _prune_report_pages(warehouse, keep={report_pages(warehouse, version_id).name, replaced_report})
    log.info("published %s as version %s", warehouse, version_id)
    return _version(vdir, warehouse, entry, version_id)


def _pointer_moves(warehouse: Path, data_dir: Path, index: dict[str, Any], entry: dict[str, Any],
                   token: str) -> list[list[str]]:
    """The finance pointer and the version record, staged; the record is the last rename of a switch."""
    vdir = versions_dir(warehouse, data_dir)
    moves = []
    token = f"{token}-record"  # a folder of its own: a version's staging folder is renamed whole
    if entry.get("finance_exports") or (data_dir / "exports" / FINANCE_CURRENT).exists():
        current = _staged(data_dir / "exports" / FINANCE_CURRENT, warehouse, token)
        _write_json(current, {k: entry.get(k) for k in ("version_id", "run_id", "as_of")}
                    | {"path": entry.get("finance_exports")})
        moves.append([str(current), str(data_dir / "exports" / FINANCE_CURRENT)])
    record = _staged(vdir / INDEX, warehouse, token)
    _write_json(record, index)
    moves.append([str(record), str(vdir / INDEX)])
    return moves


def _stage_report(pages: Path, warehouse: Path, version_id: str, token: str) -> tuple[Path, Path]:
    """A copy of the report's pages and a link to them, both beside the latest report, not yet in place."""
    if not (pages / "index.html").is_file():
        raise PublishError(f"{pages}: no index.html; the report was not built")
    target = report_pages(warehouse, version_id)
    staged = _staged(target, warehouse, token)
    staged.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(pages, staged)
    link = _staged(report_path(warehouse), warehouse, f"{token}-link")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target.name)  # relative: it resolves once renamed to report/<stem>, beside the pages
    return staged, link


def _report_moves(staged: dict[str, Path], warehouse: Path, version_id: str) -> list[list[str]]:
    """The pages to their folder (a new name; kept as it is when a rollback publishes them again), then the link."""
    target = report_pages(warehouse, version_id)
    moves = [] if target.is_dir() else [[str(staged["report"]), str(target)]]
    return [*moves, [str(staged["report_link"]), str(report_path(warehouse))]]


def _live_report_pages(warehouse: Path) -> str:
    link = report_path(warehouse)
    return os.readlink(link) if link.is_symlink() else ""


def _prune_report_pages(warehouse: Path, keep: set[str]) -> None:
    """Drop the pages of versions no longer shown, keeping the one just replaced (a reader may have it open)."""
    folder = report_path(warehouse).parent
    pattern = re.compile(rf"\.{re.escape(warehouse.stem)}-\d{{6}}_.+")
    for p in folder.iterdir() if folder.is_dir() else []:
        if pattern.fullmatch(p.name) and p.name not in keep and p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)


def publish_file(
    build_file: Path, warehouse: Path, data_dir: Path, run_id: str, as_of: str, keep: int = DEFAULT_KEEP
) -> Version:
    """Publish the warehouse file alone (no BI copy, no finance exports)."""
    return publish_set(build_file, warehouse, data_dir, run_id, as_of, keep=keep)


ReportBuilder = Callable[[Version, Path], None]


def _rollback_report(target: Version, warehouse: Path, data_dir: Path, token: str,
                     report_builder: ReportBuilder | None) -> list[list[str]]:
    """The moves that show `target`'s report: its pages kept beside the link, its run's, or built afresh."""
    if report_pages(warehouse, target.version_id).is_dir():
        link = _staged(report_path(warehouse), warehouse, f"{token}-link")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(report_pages(warehouse, target.version_id).name)
        return [[str(link), str(report_path(warehouse))]]
    source = data_dir / "runs" / target.run_id / "report"
    if not (source / "index.html").is_file():
        if report_builder is None:
            log.warning("the report of version %s is gone (%s); the latest report still shows the version "
                        "rolled back from: rebuild it with `salesos report --version`", target.version_id, source)
            return []
        source = _staged(report_pages(warehouse, target.version_id), warehouse, f"{token}-build")
        report_builder(target, source)
    staged, link = _stage_report(source, warehouse, target.version_id, token)
    return _report_moves({"report": staged, "report_link": link}, warehouse, target.version_id)


def rollback(warehouse: Path, data_dir: Path, version_id: str | None = None,
             report_builder: ReportBuilder | None = None) -> Version:
    """Publish a kept version again, with its BI copy, finance exports and report (default: the one before the live).

    The report is the version's run's own (`<data>/runs/<run_id>/report/`), or, when that is gone, what
    `report_builder(version, folder)` writes. Repeated, a plain rollback steps back one version each time; it
    refuses at the oldest kept version. Call under the warehouse lock.
    """
    recover(warehouse, data_dir)
    versions = list_versions(warehouse, data_dir)
    if not versions:
        raise ValueError(f"no published versions of {warehouse} under {versions_dir(warehouse, data_dir)}")
    live = next((i for i, v in enumerate(versions) if v.live), len(versions) - 1)
    if version_id is None:
        if live == 0:
            raise ValueError(f"{versions[live].version_id} is the oldest kept version of {warehouse}; "
                             "nothing older to roll back to")
        target = versions[live - 1]
    else:
        matches = [v for v in versions if v.version_id == version_id or v.version_id.startswith(version_id)]
        if len(matches) != 1:
            known = ", ".join(v.version_id for v in versions)
            raise ValueError(f"version {version_id!r} matches {len(matches)} versions; known: {known}")
        target = matches[0]
    vdir = versions_dir(warehouse, data_dir)
    token = f"rollback-{target.version_id}"
    moves: list[list[str]] = []
    try:
        if compat_path(warehouse).exists():
            staged_bi = copies.write_compat_copy(target.path, _staged(compat_path(warehouse), warehouse, token))
            moves.append([str(staged_bi), str(compat_path(warehouse))])
        staged_wh = _staged(warehouse, warehouse, token)
        _copy_file(target.path, staged_wh)
        staged_wh.chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)  # the live file is writable
        moves.append([str(staged_wh), str(warehouse)])
        if report_path(warehouse).is_symlink():  # a warehouse published with its report
            moves += _rollback_report(target, warehouse, data_dir, token, report_builder)
        index = _read_index(vdir) | {"live": target.version_id}
        entry = next(e for e in index["versions"] if e["version_id"] == target.version_id)
        moves += _pointer_moves(warehouse, data_dir, index, entry, token)
    except BaseException:
        recover(warehouse, data_dir)
        raise
    replaced_report = _live_report_pages(warehouse)
    _commit_and_switch(vdir, target.version_id, moves)
    if any(dst == str(report_path(warehouse)) for _, dst in moves):
        _prune_report_pages(warehouse, keep={report_pages(warehouse, target.version_id).name, replaced_report})
    log.info("rolled %s back to version %s", warehouse, target.version_id)
    return _version(vdir, warehouse, entry, target.version_id)
