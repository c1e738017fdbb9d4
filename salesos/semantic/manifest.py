"""dbt's semantic manifest, kept inside the warehouse it describes.

dbt writes `semantic_manifest.json` into the run's target folder, which is not published. The build step
copies it into the build copy (table `semantic.semantic_manifest`, one row), so the manifest travels with
the warehouse file: each kept version and a rollback carry the metric definitions they were built with,
and `salesos metrics` needs neither the dbt project nor the build's target folder.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

MANIFEST_SCHEMA = "semantic"
MANIFEST_TABLE = f"{MANIFEST_SCHEMA}.semantic_manifest"
MANIFEST_FILE = "semantic_manifest.json"


class ManifestMissing(RuntimeError):
    """The warehouse holds no semantic manifest (built before the semantic layer, or not a salesos warehouse)."""


def store_manifest(warehouse: Path, manifest_file: Path, *, as_of: date, run_id: str) -> int:
    """Write dbt's semantic manifest into the warehouse file (replacing an older one); returns its metric count."""
    if not manifest_file.is_file():
        raise ManifestMissing(f"dbt wrote no semantic manifest at {manifest_file}")
    text = manifest_file.read_text(encoding="utf-8")
    metrics = len(json.loads(text).get("metrics", []))
    con = duckdb.connect(str(warehouse))
    try:
        con.execute(f"create schema if not exists {MANIFEST_SCHEMA}")
        con.execute(f"create or replace table {MANIFEST_TABLE} "
                    "(as_of_date date, run_id varchar, metric_count integer, manifest_json varchar)")
        con.execute(f"insert into {MANIFEST_TABLE} values (?, ?, ?, ?)", [as_of, run_id, metrics, text])
    finally:
        con.close()
    return metrics


def read_manifest(con: duckdb.DuckDBPyConnection, warehouse: Path) -> dict[str, Any]:
    """The manifest stored in the warehouse open on `con` (read-only is enough)."""
    found = con.execute("select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
                        [MANIFEST_SCHEMA, MANIFEST_TABLE.split(".", 1)[1]]).fetchone()
    if not found or not found[0]:
        raise ManifestMissing(f"{warehouse} has no semantic manifest ({MANIFEST_TABLE}): it was published before "
                              "the semantic layer existed; run `salesos run` again to publish one with it")
    row = con.execute(f"select manifest_json from {MANIFEST_TABLE}").fetchone()
    assert row is not None
    manifest: dict[str, Any] = json.loads(row[0])
    return manifest
