"""Issue 22 case 8: UTF-8 (with or without BOM), UTF-16 and Windows-1252 exports read right, and a file that
mixes encodings quarantines only its undecodable rows.

Before: a Windows-1252 file failed with "File is not latin-1 encoded", and a UTF-8 file with one Latin-1
byte loaded with every accented name garbled ("SociÃ©tÃ©"), with no warning.
"""

import codecs
import csv
import hashlib
import io
from datetime import UTC, datetime

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesos.extract.landing import archive_exports
from salesos.extract.load import detect_encoding, load_raw
from salesos.settings import Settings

NOW = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
NAMES = ["Société Générale", "“Zoë” & Co – €", "Ærø Fisk"]


def _accounts_text(names, eol="\r\n"):
    lines = ["Id,Name,NumberOfEmployees"]
    lines += [f"001{i:03d},{n},{10 + i}" for i, n in enumerate(names, start=1)]
    return eol.join(lines) + eol


def _load(exports, tmp_path, run_id="r1", **settings):
    archive = tmp_path / "archive" / run_id
    files = archive_exports(exports, archive)
    con = duckdb.connect(str(tmp_path / f"{run_id}.duckdb"))
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    res = load_raw(con, archive, files, run_id, NOW, settings=Settings(**settings), work_dir=work)
    return con, res, archive, work


def _names(con):
    return [r[0] for r in con.execute("select name from raw.accounts order by _row_number").fetchall()]


@pytest.mark.parametrize(
    ("encoding", "prefix", "label"),
    [
        ("utf-8", b"", "utf-8"),
        ("utf-8", codecs.BOM_UTF8, "utf-8"),
        ("utf-16-le", codecs.BOM_UTF16_LE, "utf-16"),
        ("utf-16-be", codecs.BOM_UTF16_BE, "utf-16"),
        ("cp1252", b"", "windows-1252"),
    ],
)
def test_each_encoding_is_detected_and_read_exactly(tiny_exports, tmp_path, encoding, prefix, label):
    path = tiny_exports / "Account.csv"
    path.write_bytes(prefix + _accounts_text(NAMES).encode(encoding))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    con, res, archive, work = _load(tiny_exports, tmp_path)
    assert res.encodings["Account.csv"] == label
    assert _names(con) == NAMES
    assert con.execute("select id, number_of_employees from raw.accounts order by 1 limit 1").fetchall() == [
        ("001001", "11")
    ]
    assert res.quarantined["Account.csv"] == 0
    # the archive keeps the original bytes; the UTF-8 copy was only for the load
    assert hashlib.sha256((archive / "Account.csv").read_bytes()).hexdigest() == digest
    assert list(work.iterdir()) == []


def test_windows_1252_beyond_the_sample_is_still_windows_1252(tiny_exports, tmp_path):
    # the first MB is ASCII, so detection says UTF-8; DuckDB then meets 0x80 (euro): the file is rescanned
    filler = [f"001{i:06d},Plain {i},5" for i in range(60_000)]
    text = "Id,Name,NumberOfEmployees\n" + "\n".join(filler) + "\n002000001,Prix 5 €,7\n"
    (tiny_exports / "Account.csv").write_bytes(text.encode("cp1252"))
    assert len(text) > (1 << 20)
    con, res, _, _ = _load(tiny_exports, tmp_path)
    assert res.encodings["Account.csv"] == "windows-1252"
    assert con.execute("select name from raw.accounts where id = '002000001'").fetchall() == [("Prix 5 €",)]
    assert res.loaded["Account.csv"] == 60_001


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
def test_utf8_file_with_a_latin1_row_quarantines_that_row_and_reads_the_rest_right(tiny_exports, tmp_path, eol):
    good = _accounts_text(NAMES, eol).encode("utf-8")
    bad_line = f"001009,Soci\xe9t\xe9 Latin,9{eol}".encode("latin-1")
    tail = f"001010,Café Müller,3{eol}".encode()
    (tiny_exports / "Account.csv").write_bytes(good + bad_line + tail)
    con, res, _, _ = _load(tiny_exports, tmp_path)
    assert res.encodings["Account.csv"] == "utf-8"
    assert _names(con) == [*NAMES, "Café Müller"]  # not "SociÃ©tÃ©"
    q = con.execute("select _row_number, _reason, _value, _source_file from quarantine.accounts").fetchall()
    assert q == [(4, "undecodable_text", "001009,Soci\\xe9t\\xe9 Latin,9", "Account.csv")]
    assert con.execute("select _row_number from raw.accounts where id = '001010'").fetchall() == [(5,)]
    assert res.read["Account.csv"] == res.loaded["Account.csv"] + res.quarantined["Account.csv"] == 5
    assert res.by_rule["Account.csv:undecodable_text"] == 1


def test_the_encoding_setting_overrides_detection(tiny_exports, tmp_path):
    (tiny_exports / "Account.csv").write_bytes(_accounts_text(["Ã©té"]).encode("utf-8"))
    con, res, _, _ = _load(tiny_exports, tmp_path, export_encoding="windows-1252")
    assert res.encodings["Account.csv"] == "windows-1252"
    assert _names(con) == ["Ã©té".encode().decode("cp1252")]  # what those bytes are in Windows-1252, as asked


def test_detection_reads_a_sample_only(tmp_path):
    path = tmp_path / "big.csv"
    path.write_bytes(b"Id,Name\n" + b"1,abc\n" * 400_000)  # 2.4 MB of ASCII
    assert detect_encoding(path) == "utf-8"
    assert detect_encoding(path, "UTF-16") == "utf-16"


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(
        st.text(alphabet=st.sampled_from(list("abcXYZ 0,;\"'éèüÆø€“”–—…ßŠž\n")), min_size=1, max_size=12).filter(
            lambda s: s.strip() == s and s.strip()
        ),
        min_size=1,
        max_size=15,
    ),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-be-bom", "cp1252"]),
    eol=st.sampled_from(["\n", "\r\n"]),
)
def test_any_text_in_any_supported_encoding_loads_exactly(tiny_exports, tmp_path_factory, names, encoding, eol):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=eol)
    writer.writerow(["Id", "Name"])
    writer.writerows([f"001{i:03d}", n] for i, n in enumerate(names))
    text = buf.getvalue()
    data = codecs.BOM_UTF16_BE + text.encode("utf-16-be") if encoding == "utf-16-be-bom" else text.encode(encoding)
    (tiny_exports / "Account.csv").write_bytes(data)
    con, res, _, _ = _load(tiny_exports, tmp_path_factory.mktemp("enc"))
    assert _names(con) == names
    assert res.quarantined["Account.csv"] == 0
