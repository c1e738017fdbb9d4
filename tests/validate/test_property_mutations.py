"""Property: any mutation of a valid export either loads with every row accounted for, or fails cleanly.

Loaded + quarantined equals the number of records in the file (counted independently with Python's
csv module), or the run stops with an ExportError / ValidationFailed that names a file, and the
published warehouse is unchanged.
"""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesos import pipeline
from salesos.extract.landing import ExportError
from salesos.run_context import RunContext
from salesos.validate.gx_checks import ValidationFailed

from ..conftest import ACCOUNTS, OPPORTUNITIES, QUOTAS, USERS, write_csv

FILES = {"Opportunity.csv": OPPORTUNITIES, "User.csv": USERS, "Account.csv": ACCOUNTS, "quotas.csv": QUOTAS}

cell_text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "-1", "1e309", "NaN", "2026-02-30", "13/13/2026", "true", "NULL", '"', ",", "\n", "1,000"]),
)


@st.composite
def mutation(draw):
    file = draw(st.sampled_from(sorted(FILES)))
    rows = [dict(r) for r in FILES[file]]
    kind = draw(st.sampled_from(["cell", "cell", "cell", "duplicate_row", "drop_row", "header_case", "truncate"]))
    if kind == "cell":
        for _ in range(draw(st.integers(1, 3))):
            r = draw(st.integers(0, len(rows) - 1))
            field = draw(st.sampled_from(sorted(rows[0])))
            rows[r][field] = draw(cell_text)
    elif kind == "duplicate_row":
        rows.append(dict(rows[draw(st.integers(0, len(rows) - 1))]))
    elif kind == "drop_row" and len(rows) > 1:
        rows.pop(draw(st.integers(0, len(rows) - 1)))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    w.writeheader()
    w.writerows(rows)
    text = buf.getvalue()
    if kind == "header_case":
        header, rest = text.split("\n", 1)
        text = draw(st.sampled_from([header.lower(), header.upper()])) + "\n" + rest
    if kind == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    return file, text


def _records(data: bytes) -> int:
    text = data.decode("utf-8-sig", errors="replace")
    rows = [r for r in csv.reader(io.StringIO(text, newline="")) if any(c != "" for c in r)]
    return max(len(rows) - 1, 0)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("base")
    for name, rows in FILES.items():
        write_csv(d / name, rows)
    return d


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation())
def test_mutated_exports_load_fully_or_fail_cleanly(base, tmp_path_factory, mut):
    file, text = mut
    root = tmp_path_factory.mktemp("run")
    exports = root / "exports"
    shutil.copytree(base, exports)
    (exports / file).write_text(text, encoding="utf-8", newline="")
    wh = root / "wh" / "salesos.duckdb"
    wh.parent.mkdir()
    duckdb.connect(str(wh)).close()
    before = hashlib.sha256(wh.read_bytes()).hexdigest()
    ctx = RunContext.create(as_of=date(2026, 10, 31), exports=exports, warehouse=wh, run_id="prop")
    try:
        extracted = pipeline.extract(ctx)
        pipeline.validate(ctx)
    except (ExportError, ValidationFailed) as exc:
        assert ".csv" in str(exc), f"error does not name a file: {exc}"
        pipeline.discard(ctx)
        assert hashlib.sha256(wh.read_bytes()).hexdigest() == before
        assert not ctx.build_dir.exists()
        return
    for name, read in extracted["rows_read"].items():
        assert extracted["rows_loaded"][name] + extracted["rows_quarantined"][name] == read
    data = (exports / file).read_bytes()
    if data.strip():
        assert extracted["rows_read"][file] == _records(data), text
