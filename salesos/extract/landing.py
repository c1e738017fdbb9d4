"""Pull export files from the landing location into a per-run archive, untouched, with checksums.

The landing location is a local folder or any fsspec URL (`s3://bucket/exports/` through s3fs, `gs://...`
through gcsfs, `file:///...`); Airflow's ObjectStoragePath uses the same backends. The archive keeps every
run's files byte for byte, so a bad night can always be replayed or inspected. The loader reads the local
archive (`<data>/archive/<run_id>/`); a landing in object storage also keeps the night's archive there,
beside the exports (`<landing>/_archive/<run_id>/`, or the run option `archive`), written once and never
overwritten (`keep_archive`).
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
# where a landing in object storage keeps its nights' archives, under the landing location (a `_` folder: no
# export is found there, and Spark and Hive tools skip it)
REMOTE_ARCHIVE_DIR = "_archive"
# the URL schemes that are a local path (everything else with `://` is object storage or a remote filesystem)
LOCAL_PROTOCOLS = ("file", "local")


class ExportError(ValueError):
    """An export folder that breaks the contract; the message names the file (and field)."""


class ArchiveExists(ExportError):
    """The night's archive in object storage already holds other files for this run id: never overwritten."""


def is_remote(location: str | Path) -> bool:
    """True for an fsspec URL that is not a local path (`s3://`, `gs://`, `gcs://`, `memory://`, ...)."""
    text = str(location)
    return "://" in text and text.split("://", 1)[0].lower() not in LOCAL_PROTOCOLS


def archive_location(exports: str | Path, archive: str | None = None) -> str | None:
    """The root under which a run's archive is kept beyond the local one (`<root>/<run_id>/`), or None.

    `archive` (the run option) wins; else a landing in object storage keeps it beside the exports
    (`<landing>/_archive`), so the bytes a night read stay in the bucket they came from; a local landing keeps
    only the local archive, as it always did.
    """
    if archive:
        return str(archive).rstrip("/")
    if is_remote(exports):
        return f"{str(exports).rstrip('/')}/{REMOTE_ARCHIVE_DIR}"
    return None


def open_location(location: str, what: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and path of a location; an unknown scheme or a backend not installed is one line."""
    try:
        fs, path = fsspec.core.url_to_fs(location)
    except (ImportError, ValueError) as exc:
        raise ExportError(f"{what} {location}: cannot be opened ({' '.join(str(exc).split())[:200]})") from exc
    fs.invalidate_cache()  # s3fs and gcsfs cache listings per instance: a night sees the bucket as it is now
    return fs, path


def is_folder(fs: fsspec.AbstractFileSystem, root: str, location: str, what: str) -> bool:
    """Whether `root` is a folder; a store that refuses the look-up (no such bucket, no access) is one line."""
    try:
        return fs.isdir(root)
    except (OSError, PermissionError) as exc:
        raise ExportError(f"{what} {location}: cannot be listed ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:200]})") from exc


def kept_archive_exists(root: str, run_id: str) -> bool:
    """Whether object storage already holds a whole archive (its manifest) of `run_id` under `root`."""
    fs, path = open_location(root, "archive location")
    return fs.exists(f"{path.rstrip('/')}/{run_id}/{MANIFEST}")


def keep_archive(archive_dir: Path, root: str) -> str:
    """Copy the run's local archive to `<root>/<run_id>/` (object storage), once; returns that URL.

    Written file by file with the manifest last, so a manifest there means a whole archive. A run id whose
    archive is already there is never overwritten: with the same bytes (an Airflow retry of the extract) it is
    left as it is; with any other, the run stops with ArchiveExists before anything is built. Files of an upload
    that stopped before its manifest are not an archive and are written again.
    """
    run_id = archive_dir.name
    fs, base = open_location(root, "archive location")
    base = f"{base.rstrip('/')}/{run_id}"
    url = f"{root.rstrip('/')}/{run_id}"
    local_manifest = (archive_dir / MANIFEST).read_bytes()
    remote_manifest = f"{base}/{MANIFEST}"
    if fs.exists(remote_manifest):
        if fs.cat_file(remote_manifest) == local_manifest:
            log.info("archive of run %s already kept in %s with the same files", run_id, url)
            return url
        raise ArchiveExists(
            f"{url} already holds the archive of run {run_id}, with other files: an archive is never overwritten; "
            "start the night with another run id (`salesos run` without --run-id picks a fresh one)")
    for path in sorted(p for p in archive_dir.rglob("*") if p.is_file() and p.name != MANIFEST):
        fs.put_file(str(path), f"{base}/{path.relative_to(archive_dir).as_posix()}")
    fs.pipe_file(remote_manifest, local_manifest)
    log.info("kept the archive of run %s in %s", run_id, url)
    return url


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
    fs, root = open_location(str(landing), "exports location")
    if not is_folder(fs, root, str(landing), "exports location"):
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
