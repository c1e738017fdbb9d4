"""A corpus of broken exports and the exact behaviour of a run on each.

Every case starts from the small clean export of conftest.py, breaks it the way real exports break,
and runs the extract and validate steps against a folder that already holds a published warehouse.
A case either fails the run (with the message asserted) and leaves the published warehouse byte for
byte as it was, or loads with the bad rows quarantined (rows asserted) and loaded + quarantined = read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pytest

from salesos import pipeline
from salesos.extract.landing import ExportError
from salesos.run_context import RunContext
from salesos.validate.gx_checks import ValidationFailed

from ..conftest import ACCOUNTS, OPPORTUNITIES, QUOTAS, USERS, write_csv

AS_OF = date(2026, 10, 31)


def _csv_text(rows: list[dict], header: list[str] | None = None) -> str:
    header = header or list(rows[0])
    lines = [",".join(header)] + [",".join(str(r.get(h, "")) for h in header) for r in rows]
    return "\n".join(lines) + "\n"


def _set(file: str, rows: list[dict], row: int, **changes: str) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        new = [dict(r) for r in rows]
        new[row - 1].update(changes)
        write_csv(d / file, new)

    return apply


def _write(file: str, data: bytes | str) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        (d / file).write_bytes(data if isinstance(data, bytes) else data.encode())

    return apply


def _remove(file: str) -> Callable[[Path], None]:
    return lambda d: (d / file).unlink()


OPP_HEADER = list(OPPORTUNITIES[0])


@dataclass
class Case:
    name: str
    breaks: Callable[[Path], None]
    fails_with: str | None = None  # regex of the error; None: the run goes on
    quarantined: list[tuple[str, int, str, str]] = field(default_factory=list)  # file, row, rule, field
    warns_on: list[str] = field(default_factory=list)  # columns with warnings


CASES = [
    Case(
        "missing required file",
        _remove("Account.csv"),
        r"required export file\(s\) missing from .*exports: Account\.csv \(files found: Opportunity\.csv, User\.csv, quotas\.csv\)",
    ),
    Case(
        "renamed required column",
        _write("Opportunity.csv", _csv_text(OPPORTUNITIES).replace("StageName", "Stage", 1)),
        r"Opportunity\.csv: required column\(s\) missing: StageName",
    ),
    Case(
        "one field under two headers",
        _write("Opportunity.csv", _csv_text(OPPORTUNITIES).replace("Name,", "stage_name,", 1)),
        r"Opportunity\.csv: headers 'stage_name' and 'StageName' both map to column 'stage_name'",
    ),
    Case("empty required file", _write("User.csv", b""), r"User\.csv: the file is empty"),
    Case(
        "header-only required file",
        _write("Opportunity.csv", ",".join(OPP_HEADER) + "\n"),
        r"Opportunity\.csv: expect_table_row_count_to_be_between min_value=1 failed: observed 0",
    ),
    Case(
        "stale export",
        lambda d: write_csv(
            d / "Opportunity.csv", [{**o, "LastModifiedDate": "2026-09-01T00:00:00Z"} for o in OPPORTUNITIES]
        ),
        r"Opportunity\.csv: field 'last_modified_date' fails expect_column_max_to_be_between",
    ),
    Case(
        "quota period not a month start",
        _set("quotas.csv", QUOTAS, 2, period_start="2026-10-15"),
        r"quotas\.csv: field 'period_start' fails .* \(data rows 2; values '2026-10-15'\)",
    ),
    Case(
        "duplicate id",
        _set("Opportunity.csv", OPPORTUNITIES, 3, Id="006A"),
        quarantined=[("Opportunity.csv", 3, "duplicate_id", "id")],
    ),
    Case(
        "negative amount",
        _set("Opportunity.csv", OPPORTUNITIES, 2, Amount="-500"),
        quarantined=[("Opportunity.csv", 2, "negative_value", "amount")],
    ),
    Case(
        "unparseable date",
        _set("Opportunity.csv", OPPORTUNITIES, 4, CloseDate="31/02/2026"),
        quarantined=[("Opportunity.csv", 4, "unparseable_date", "close_date")],
    ),
    Case(
        "empty owner",
        _set("Opportunity.csv", OPPORTUNITIES, 1, OwnerId=""),
        quarantined=[("Opportunity.csv", 1, "missing_value", "owner_id")],
    ),
    Case(
        "not a boolean",
        _set("User.csv", USERS, 2, IsActive="sometimes"),
        quarantined=[("User.csv", 2, "unparseable_boolean", "is_active")],
        warns_on=["owner_id"],
    ),  # the rep's deals now have an unknown owner: they load, with a warning
    Case(
        "employees not a number",
        _set("Account.csv", ACCOUNTS, 1, NumberOfEmployees="lots"),
        quarantined=[("Account.csv", 1, "unparseable_integer", "number_of_employees")],
        warns_on=["account_id"],
    ),
    Case(
        "duplicated header line",
        _write("Opportunity.csv", _csv_text(OPPORTUNITIES) + ",".join(OPP_HEADER) + "\n"),
        quarantined=[("Opportunity.csv", 5, "unparseable_number", "amount")],
    ),
    Case(
        "truncated last line",
        _write("Opportunity.csv", _csv_text(OPPORTUNITIES) + "006X,001A,005B,Deal X,Prosp"),
        quarantined=[("Opportunity.csv", 5, "missing_value", "close_date")],
    ),
    Case(
        "owner who does not exist",
        _set("Opportunity.csv", OPPORTUNITIES, 2, OwnerId="005NOBODY"),
        warns_on=["owner_id"],
    ),
    Case(
        "unknown stage", _set("Opportunity.csv", OPPORTUNITIES, 3, StageName="Discovery Call"), warns_on=["stage_name"]
    ),
    Case("header-only optional file", _write("Lead.csv", "Id,OwnerId,CreatedDate\n")),
    Case("new custom column", lambda d: write_csv(d / "Account.csv", [{**a, "Region__c": "North"} for a in ACCOUNTS])),
    Case(
        "UTF-8 BOM, CRLF and semicolons",
        _write("User.csv", b"\xef\xbb\xbf" + _csv_text(USERS).replace(",", ";").replace("\n", "\r\n").encode()),
    ),
    Case(
        "Latin-1",
        _write("Account.csv", _csv_text([{**ACCOUNTS[0], "Name": "Société Générale"}, ACCOUNTS[1]]).encode("latin-1")),
    ),
    Case(
        "US dates, time zones and thousands separators",
        _write(
            "Opportunity.csv",
            _csv_text(
                [{**OPPORTUNITIES[0], "CloseDate": "09/10/2026", "CreatedDate": "2026-08-01T12:00:00+02:00", "Amount": '"1,000.00"'}, *OPPORTUNITIES[1:]]
            ),
        ),
    ),
]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def published(tmp_path) -> Path:
    wh = tmp_path / "wh" / "salesos.duckdb"
    wh.parent.mkdir()
    con = duckdb.connect(str(wh))
    con.execute("create schema marts; create table marts.fct_opportunities as select 'last good' as note")
    con.close()
    return wh


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_broken_export(case: Case, tiny_exports, published, tmp_path):
    case.breaks(tiny_exports)
    before = _sha(published)
    ctx = RunContext.create(as_of=AS_OF, exports=tiny_exports, warehouse=published, run_id="broken")
    if case.fails_with:
        with pytest.raises((ExportError, ValidationFailed), match=case.fails_with):
            try:
                pipeline.extract(ctx)
                pipeline.validate(ctx)
            finally:
                pipeline.discard(ctx)
        assert _sha(published) == before, "a failed run changed the published warehouse"
        assert not ctx.build_dir.exists()
        return
    extracted = pipeline.extract(ctx)
    validated = pipeline.validate(ctx)
    for name, read in extracted["rows_read"].items():
        assert extracted["rows_loaded"][name] + extracted["rows_quarantined"][name] == read, name
    con = duckdb.connect(str(ctx.build_warehouse), read_only=True)
    got = []
    for table in ("opportunities", "users", "accounts"):
        got += con.execute(f"select _source_file, _row_number, _reason, _field from quarantine.{table}").fetchall()
    con.close()
    assert sorted(got) == sorted(case.quarantined)
    warned = [w.split("field '")[1].split("'")[0] for w in validated["warnings"]]
    assert warned == case.warns_on
    assert _sha(published) == before  # nothing is published before the publish step
