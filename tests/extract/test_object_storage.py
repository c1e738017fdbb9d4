"""Exports landed in object storage: `--exports s3://bucket/prefix` (and gs://) through fsspec, the archive kept
there, written once.

Against moto's S3 server on loopback (tests/extract/object_storage.py). There is no fake GCS server on PyPI that
runs without Docker, so gs:// is tested for its URL plumbing only (the backend gcsfs, the paths, the archive's
place); it goes through the very same fsspec calls as s3://.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import fsspec
import pytest

from salesos import pipeline
from salesos.extract.landing import (
    MANIFEST,
    ArchiveExists,
    ExportError,
    archive_exports,
    archive_location,
    is_remote,
    keep_archive,
    kept_archive_exists,
    open_location,
)
from salesos.run_context import RunContext
from tests.extract.object_storage import upload

AS_OF = date(2022, 3, 31)


def _s3(bucket: str, prefix: str = "crm/exports") -> str:
    return f"s3://{bucket}/{prefix}"


def test_exports_in_a_bucket_are_archived_byte_for_byte_like_a_folder(tiny_exports: Path, s3_bucket: str,
                                                                       tmp_path: Path) -> None:
    upload(tiny_exports, _s3(s3_bucket))
    files = archive_exports(_s3(s3_bucket), tmp_path / "from_s3")
    local = archive_exports(tiny_exports, tmp_path / "from_folder")
    assert [(f.filename, f.sha256, f.bytes) for f in files] == [(f.filename, f.sha256, f.bytes) for f in local]
    assert {f.source for f in files} == {f"{_s3(s3_bucket)}/{f.filename}" for f in files}
    for f in files:
        assert (tmp_path / "from_s3" / f.filename).read_bytes() == (tiny_exports / f.filename).read_bytes()


def test_a_missing_bucket_is_one_line_naming_the_location(s3_bucket: str, tmp_path: Path) -> None:
    location = "s3://salesos-no-such-bucket/exports"
    with pytest.raises(ExportError) as err:
        archive_exports(location, tmp_path / "a")
    assert "\n" not in str(err.value) and location in str(err.value)
    assert not (tmp_path / "a").exists()


def test_a_missing_required_object_is_one_line_naming_it(tiny_exports: Path, s3_bucket: str, tmp_path: Path) -> None:
    (tiny_exports / "quotas.csv").unlink()
    upload(tiny_exports, _s3(s3_bucket))
    with pytest.raises(ExportError) as err:
        archive_exports(_s3(s3_bucket), tmp_path / "a")
    message = str(err.value)
    assert "\n" not in message
    assert f"required export file(s) missing from {_s3(s3_bucket)}: quotas.csv" in message
    assert not (tmp_path / "a").exists()


def test_the_kept_archive_is_written_once(tiny_exports: Path, s3_bucket: str, tmp_path: Path) -> None:
    root = f"s3://{s3_bucket}/crm/archive"
    archive = tmp_path / "archive" / "night1"
    archive_exports(tiny_exports, archive)
    assert not kept_archive_exists(root, "night1")
    assert keep_archive(archive, root) == f"{root}/night1"
    fs, _ = open_location(root, "archive")
    kept = {p.rsplit("/", 1)[-1]: fs.cat_file(p) for p in fs.find(f"{s3_bucket}/crm/archive/night1")}
    assert kept == {p.name: p.read_bytes() for p in archive.iterdir()}
    assert kept_archive_exists(root, "night1")
    # the same bytes again (an Airflow retry of the extract): nothing to do, nothing overwritten
    assert keep_archive(archive, root) == f"{root}/night1"
    # other bytes under the same run id: refused, the kept archive untouched
    (tiny_exports / "quotas.csv").write_text("owner_id,period_start,quota_amount\n005B,2022-03-01,1\n",
                                             encoding="utf-8")
    archive_exports(tiny_exports, archive)
    with pytest.raises(ArchiveExists) as err:
        keep_archive(archive, root)
    assert "\n" not in str(err.value) and f"{root}/night1" in str(err.value) and "never overwritten" in str(err.value)
    assert {p.rsplit("/", 1)[-1]: fs.cat_file(p) for p in fs.find(f"{s3_bucket}/crm/archive/night1")} == kept


def test_an_upload_stopped_before_its_manifest_is_not_an_archive(tiny_exports: Path, s3_bucket: str,
                                                                  tmp_path: Path) -> None:
    root = f"s3://{s3_bucket}/archive"
    archive = tmp_path / "archive" / "night1"
    archive_exports(tiny_exports, archive)
    fs, _ = open_location(root, "archive")
    fs.pipe_file(f"{s3_bucket}/archive/night1/quotas.csv", b"half")
    assert not kept_archive_exists(root, "night1")
    keep_archive(archive, root)
    assert fs.cat_file(f"{s3_bucket}/archive/night1/quotas.csv") == (archive / "quotas.csv").read_bytes()


def test_a_second_night_with_the_same_run_id_stops_and_overwrites_nothing(tiny_exports: Path, s3_bucket: str,
                                                                          tmp_path: Path) -> None:
    exports = _s3(s3_bucket)
    upload(tiny_exports, exports)

    def night(data: str) -> RunContext:
        return RunContext.create(as_of=AS_OF, exports=exports, warehouse=tmp_path / data / "wh.duckdb",
                                 run_id="night1")

    first = night("one")
    result = pipeline.extract(first)
    assert result["archive_kept_in"] == f"{exports}/_archive/night1"
    fs, _ = open_location(exports, "exports")
    manifest = fs.cat_file(f"{s3_bucket}/crm/exports/_archive/night1/{MANIFEST}")
    assert manifest == (first.archive_dir / MANIFEST).read_bytes()
    assert {m["source"] for m in json.loads(manifest)} == {f"{exports}/{f.name}" for f in tiny_exports.iterdir()}
    # the CRM sends other bytes; a second night under the same run id, on another worker's disk
    fs.pipe_file(f"{s3_bucket}/crm/exports/quotas.csv", b"owner_id,period_start,quota_amount\n005B,2022-03-01,9\n")
    second = night("two")
    with pytest.raises(ArchiveExists, match="already holds the archive of run night1"):
        pipeline.extract(second)
    assert fs.cat_file(f"{s3_bucket}/crm/exports/_archive/night1/{MANIFEST}") == manifest
    assert not second.build_dir.exists()  # nothing built
    # a run without --run-id takes the first id the bucket does not hold either
    fresh = pipeline.fresh_run_id(RunContext.create(as_of=AS_OF, exports=exports,
                                                    warehouse=tmp_path / "three" / "wh.duckdb", run_id="night1"))
    assert fresh.run_id == "night1.2"


def test_where_the_archive_is_kept() -> None:
    assert archive_location("/data/landing") is None  # a local landing: the local archive only, as before
    assert archive_location("file:///data/landing") is None
    assert archive_location("s3://b/crm/exports/") == "s3://b/crm/exports/_archive"
    assert archive_location("gs://b/crm") == "gs://b/crm/_archive"
    assert archive_location("/data/landing", "s3://b/archive/") == "s3://b/archive"
    assert is_remote("s3://b/x") and is_remote("gs://b/x") and not is_remote("/x") and not is_remote("file:///x")
    ctx = RunContext.create(as_of=AS_OF, exports="gs://b/crm", warehouse="/w/wh.duckdb", run_id="n1")
    assert ctx.kept_archive_root == "gs://b/crm/_archive"
    assert RunContext.from_dict(ctx.to_dict()) == ctx
    ctx = RunContext.create(as_of=AS_OF, exports="/land", warehouse="/w/wh.duckdb", archive="s3://b/arch")
    assert RunContext.from_dict(ctx.to_dict()).kept_archive_root == "s3://b/arch"


def test_gs_urls_go_to_gcsfs_with_the_bucket_path() -> None:
    import gcsfs

    cls = fsspec.get_filesystem_class("gs")
    assert cls is gcsfs.GCSFileSystem and fsspec.get_filesystem_class("gcs") is gcsfs.GCSFileSystem
    assert cls._strip_protocol("gs://bucket/crm/exports") == "bucket/crm/exports"
    assert cls._strip_protocol("gs://bucket/crm/_archive/night1/manifest.json") == \
        "bucket/crm/_archive/night1/manifest.json"


def test_an_unknown_scheme_is_one_line() -> None:
    with pytest.raises(ExportError, match=r"exports location nosuch://b/x: cannot be opened"):
        archive_exports("nosuch://b/x", Path("/nonexistent/a"))


def test_the_local_landing_is_unchanged(tiny_exports: Path, tmp_path: Path) -> None:
    ctx = RunContext.create(as_of=AS_OF, exports=tiny_exports, warehouse=tmp_path / "wh.duckdb", run_id="n1")
    assert ctx.kept_archive_root is None
    result = pipeline.extract(ctx)
    assert result["archive_kept_in"] is None and (ctx.archive_dir / MANIFEST).is_file()
    assert not (tiny_exports / "_archive").exists()
    for f in json.loads((ctx.archive_dir / MANIFEST).read_text(encoding="utf-8")):
        assert hashlib.sha256((tiny_exports / f["filename"]).read_bytes()).hexdigest() == f["sha256"]
