"""Pull export files from the landing location into a per-run archive, untouched, with checksums.

The landing location is a local folder or any fsspec URL (`s3://bucket/exports/`, `gcs://...`,
`file:///...`) for which the user has the fsspec backend installed; Airflow's ObjectStoragePath
uses the same backends. The archive keeps every run's files byte for byte, so a bad night can always
be replayed or inspected.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import fsspec

from salesos.contract import EXPORTS, ExportFile, export_by_filename

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


class ExportError(ValueError):
    """An export folder that breaks the contract; the message names the file (and field)."""


@dataclass(frozen=True)
class ArchivedFile:
    filename: str
    table: str
    source: str
    sha256: str
    bytes: int


def archive_exports(landing: str | Path, archive_dir: Path) -> list[ArchivedFile]:
    """Copy the contract's files from `landing` into `archive_dir` and write a checksum manifest.

    Re-archiving the same run replaces the run's folder, so a retried task starts clean.
    Raises ExportError before writing anything when a required file is missing, or when two files
    name the same export (`Opportunity.csv` and `opportunity.csv`).
    """
    fs, root = fsspec.core.url_to_fs(str(landing))
    if not fs.isdir(root):
        raise ExportError(f"exports location not found or not a folder: {landing}")
    present: dict[str, tuple[ExportFile, str]] = {}
    for entry in sorted(fs.ls(root, detail=False)):
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        export = export_by_filename(name)
        if export is not None and fs.isfile(entry):
            if export.table in present:
                # names match case-insensitively, so which one to read would be the directory's order
                other = present[export.table][1].rstrip("/").rsplit("/", 1)[-1]
                raise ExportError(
                    f"two files in {landing} are both {export.filename}: {other} and {name} "
                    "(file names match case-insensitively); remove one"
                )
            present[export.table] = (export, entry)
    missing = [e.filename for e in EXPORTS if e.required and e.table not in present]
    if missing:
        raise ExportError(
            f"required export file(s) missing from {landing}: {', '.join(missing)} "
            f"(files found: {', '.join(sorted(v[0].filename for v in present.values())) or 'none'})"
        )
    for e in EXPORTS:
        if not e.required and e.table not in present:
            log.warning("optional export %s is absent from %s: its models will be empty", e.filename, landing)

    tmp_dir = archive_dir.with_name(archive_dir.name + ".partial")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    archived: list[ArchivedFile] = []
    for table, (export, src) in sorted(present.items()):
        dest = tmp_dir / export.filename
        digest = hashlib.sha256()
        size = 0
        with fs.open(src, "rb") as fin, dest.open("wb") as fout:
            while chunk := fin.read(1 << 20):
                digest.update(chunk)
                fout.write(chunk)
                size += len(chunk)
        archived.append(ArchivedFile(export.filename, table, fs.unstrip_protocol(src), digest.hexdigest(), size))
    (tmp_dir / MANIFEST).write_text(json.dumps([asdict(a) for a in archived], indent=2), encoding="utf-8")
    shutil.rmtree(archive_dir, ignore_errors=True)
    tmp_dir.rename(archive_dir)
    log.info("archived %d export files from %s into %s", len(archived), landing, archive_dir)
    return archived


def read_manifest(archive_dir: Path) -> list[ArchivedFile]:
    """The files of an archived run, checked against their recorded checksums."""
    manifest = archive_dir / MANIFEST
    if not manifest.is_file():
        raise ExportError(f"no manifest in {archive_dir}: the extract step did not finish for this run")
    files = [ArchivedFile(**row) for row in json.loads(manifest.read_text(encoding="utf-8"))]
    for f in files:
        digest = hashlib.sha256()
        with (archive_dir / f.filename).open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != f.sha256:
            raise ExportError(
                f"{archive_dir / f.filename}: checksum differs from the manifest; the archive was changed"
            )
    return files
