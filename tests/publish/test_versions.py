import pytest

from salesos.cli import main as cli_main
from salesos.publish.versions import list_versions, publish_file, rollback


def _publish(tmp_path, content, run_id, keep=5):
    build = tmp_path / "build" / run_id / "wh.duckdb"
    build.parent.mkdir(parents=True)
    build.write_text(content)
    return publish_file(build, tmp_path / "wh.duckdb", tmp_path, run_id, "2026-10-31", keep=keep)


def test_publish_swaps_the_file_and_keeps_the_last_n_versions(tmp_path):
    for i in range(4):
        _publish(tmp_path, f"v{i}", f"r{i}", keep=3)
    assert (tmp_path / "wh.duckdb").read_text() == "v3"
    versions = list_versions(tmp_path / "wh.duckdb", tmp_path)
    assert [v.run_id for v in versions] == ["r1", "r2", "r3"]
    assert [v.path.read_text() for v in versions] == ["v1", "v2", "v3"]
    assert not (tmp_path / "build" / "r3" / "wh.duckdb").exists()


def test_a_reader_holding_the_old_file_keeps_reading_it(tmp_path):
    _publish(tmp_path, "old", "r1")
    with (tmp_path / "wh.duckdb").open() as reader:
        _publish(tmp_path, "new", "r2")
        assert reader.read() == "old"
    assert (tmp_path / "wh.duckdb").read_text() == "new"


def test_rollback_to_previous_and_to_a_named_version(tmp_path):
    for i in range(3):
        _publish(tmp_path, f"v{i}", f"r{i}")
    assert rollback(tmp_path / "wh.duckdb", tmp_path).run_id == "r1"
    assert (tmp_path / "wh.duckdb").read_text() == "v1"
    first = list_versions(tmp_path / "wh.duckdb", tmp_path)[0].version_id
    rollback(tmp_path / "wh.duckdb", tmp_path, first)
    assert (tmp_path / "wh.duckdb").read_text() == "v0"
    with pytest.raises(ValueError, match="matches 0 versions"):
        rollback(tmp_path / "wh.duckdb", tmp_path, "nope")


def test_cli_lists_and_rolls_back(tmp_path, capsys):
    _publish(tmp_path, "a", "r1")
    _publish(tmp_path, "b", "r2")
    assert cli_main(["versions", "--warehouse", str(tmp_path / "wh.duckdb")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "000001_r1  as of 2026-10-31  run r1",
        "000002_r2  as of 2026-10-31  run r2 (live)",
    ]
    assert cli_main(["rollback", "--warehouse", str(tmp_path / "wh.duckdb")]) == 0
    assert (tmp_path / "wh.duckdb").read_text() == "a"
    assert cli_main(["rollback", "--warehouse", str(tmp_path / "other.duckdb")]) == 1
