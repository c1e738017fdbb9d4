import hashlib
import json

import pytest

from salesos.extract.landing import ExportError, archive_exports, read_manifest


def test_archive_copies_files_untouched_with_checksums(tiny_exports, tmp_path):
    archive = tmp_path / "archive" / "run1"
    files = archive_exports(tiny_exports, archive)
    assert sorted(f.filename for f in files) == ["Account.csv", "Opportunity.csv", "User.csv", "quotas.csv"]
    for f in files:
        original = (tiny_exports / f.filename).read_bytes()
        assert (archive / f.filename).read_bytes() == original
        assert f.sha256 == hashlib.sha256(original).hexdigest()
    manifest = json.loads((archive / "manifest.json").read_text())
    assert {m["filename"] for m in manifest} == {f.filename for f in files}
    assert read_manifest(archive) == files


def test_file_url_works_like_a_path(tiny_exports, tmp_path):
    files = archive_exports(f"file://{tiny_exports}", tmp_path / "a")
    assert len(files) == 4


def test_missing_required_file_names_it_and_writes_nothing(tiny_exports, tmp_path):
    (tiny_exports / "quotas.csv").unlink()
    archive = tmp_path / "archive" / "run1"
    with pytest.raises(ExportError, match=r"required export file\(s\) missing.*quotas\.csv"):
        archive_exports(tiny_exports, archive)
    assert not archive.exists()


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ExportError, match="not found"):
        archive_exports(tmp_path / "nope", tmp_path / "a")


def test_tampered_archive_is_detected(tiny_exports, tmp_path):
    archive = tmp_path / "a"
    archive_exports(tiny_exports, archive)
    (archive / "User.csv").write_text("Id\nX\n")
    with pytest.raises(ExportError, match="checksum"):
        read_manifest(archive)


def test_rearchiving_a_run_replaces_it(tiny_exports, tmp_path):
    archive = tmp_path / "a"
    archive_exports(tiny_exports, archive)
    (tiny_exports / "Lead.csv").write_text("Id,OwnerId,CreatedDate\n00Q1,005B,2026-01-01T00:00:00.000Z\n")
    files = archive_exports(tiny_exports, archive)
    assert "Lead.csv" in {f.filename for f in files}
    assert not (archive.parent / "a.partial").exists()
