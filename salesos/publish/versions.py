"""Publishing: one atomic rename, the last N versions kept, and a rollback that is also one rename.

Readers open the published file by name. `os.replace` swaps the name to the new file in one step, so
a reader sees the old or the new warehouse, never a half-built one; a reader that already has the old
file open keeps reading the old version until it reopens. Versions are hard links to published files
(no copy, no extra disk until a version is the only name left for its file).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_KEEP = 5
INDEX = "versions.json"


@dataclass(frozen=True)
class Version:
    version_id: str
    run_id: str
    as_of: str
    path: Path


def versions_dir(warehouse: Path, data_dir: Path) -> Path:
    return data_dir / "versions" / warehouse.stem


def _read_index(vdir: Path) -> list[dict]:
    p = vdir / INDEX
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else []


def _write_index(vdir: Path, entries: list[dict]) -> None:
    tmp = vdir / (INDEX + ".tmp")
    tmp.write_text(json.dumps(entries, indent=2), encoding="utf-8")
    os.replace(tmp, vdir / INDEX)


def list_versions(warehouse: Path, data_dir: Path) -> list[Version]:
    """Published versions, newest last."""
    vdir = versions_dir(warehouse, data_dir)
    return [
        Version(e["version_id"], e["run_id"], e["as_of"], vdir / e["version_id"] / warehouse.name)
        for e in _read_index(vdir)
        if (vdir / e["version_id"] / warehouse.name).exists()
    ]


def publish_file(
    build_file: Path, warehouse: Path, data_dir: Path, run_id: str, as_of: str, keep: int = DEFAULT_KEEP
) -> Version:
    """Swap `build_file` in as the published warehouse and record it as a version."""
    if not build_file.exists():
        raise FileNotFoundError(f"nothing to publish: {build_file} does not exist")
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    vdir = versions_dir(warehouse, data_dir)
    entries = _read_index(vdir)
    n = 1 + max((int(e["version_id"].split("_", 1)[0]) for e in entries), default=0)
    version_id = f"{n:06d}_{run_id}"
    vpath = vdir / version_id / warehouse.name
    vpath.parent.mkdir(parents=True, exist_ok=True)
    os.link(build_file, vpath)  # same file, second name: kept after the next publish replaces the first
    os.replace(build_file, warehouse)
    entries.append({"version_id": version_id, "run_id": run_id, "as_of": as_of})
    for old in entries[:-keep] if keep > 0 else []:
        shutil.rmtree(vdir / old["version_id"], ignore_errors=True)
    _write_index(vdir, entries[-keep:] if keep > 0 else entries)
    log.info("published %s as version %s", warehouse, version_id)
    return Version(version_id, run_id, as_of, vpath)


def rollback(warehouse: Path, data_dir: Path, version_id: str | None = None) -> Version:
    """Publish an earlier version again (default: the one before the current)."""
    versions = list_versions(warehouse, data_dir)
    if not versions:
        raise ValueError(f"no published versions of {warehouse} under {versions_dir(warehouse, data_dir)}")
    if version_id is None:
        if len(versions) < 2:
            raise ValueError(f"{warehouse} has only one published version; nothing to roll back to")
        target = versions[-2]
    else:
        matches = [v for v in versions if v.version_id == version_id or v.version_id.startswith(version_id)]
        if len(matches) != 1:
            known = ", ".join(v.version_id for v in versions)
            raise ValueError(f"version {version_id!r} matches {len(matches)} versions; known: {known}")
        target = matches[0]
    tmp = warehouse.with_name(f".{warehouse.name}.rollback")
    tmp.unlink(missing_ok=True)
    os.link(target.path, tmp)
    os.replace(tmp, warehouse)
    log.info("rolled %s back to version %s", warehouse, target.version_id)
    return target
