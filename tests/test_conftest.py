"""The test-order hook in conftest.py: the files it names exist, and the longest go first."""

from types import SimpleNamespace

from tests.conftest import LONGEST_FILES_FIRST, ROOT, pytest_collection_modifyitems


def test_every_file_named_first_exists():
    # a renamed file would silently fall back to its alphabetical place
    assert [f for f in LONGEST_FILES_FIRST if not (ROOT / f).is_file()] == []


def test_the_longest_files_go_first_and_the_rest_keep_their_order():
    names = ["tests/dags/test_dag_integrity.py", "tests/test_lint.py", "tests/extract/test_load.py",
             "tests/warehouse/test_postgres.py", "tests/test_end_to_end.py", "tests/warehouse/test_postgres.py"]
    items = [SimpleNamespace(path=ROOT / n, n=i) for i, n in enumerate(names)]
    pytest_collection_modifyitems(None, items)
    assert [(it.path.relative_to(ROOT).as_posix(), it.n) for it in items] == [
        ("tests/test_end_to_end.py", 4),
        ("tests/warehouse/test_postgres.py", 3),
        ("tests/warehouse/test_postgres.py", 5),
        ("tests/test_lint.py", 1),
        ("tests/dags/test_dag_integrity.py", 0),
        ("tests/extract/test_load.py", 2),
    ]


def test_xdist_keeps_the_order_under_loadfile():
    # xdist's default `--loadscope-reorder` re-sorts the files by their number of tests, so the longest files
    # (one or a few tests each) went last; the hook turns it off
    from tests.conftest import pytest_configure

    config = SimpleNamespace(option=SimpleNamespace(loadscopereorder=True))
    pytest_configure(config)
    assert config.option.loadscopereorder is False
