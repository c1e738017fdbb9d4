"""Reading a built warehouse from a test: one read-only query as a data frame (the connection closed after)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd


def query_frame(warehouse: Path, sql: str) -> pd.DataFrame:
    """`sql` on a read-only connection to `warehouse`, closed before returning (a DuckDB file has one writer)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()
