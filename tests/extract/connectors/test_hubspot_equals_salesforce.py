"""The same CRM exported by Salesforce and by HubSpot gives identical marts.

The XS sample is written as Salesforce's data export and, from the same records, as HubSpot's exports
(`salesos generate --format hubspot`: deals with stages and owners by label and name, the pipeline's stages,
the deals' property history, users with teams, leads, calls, emails, meetings, products, line items, contacts,
and sales operations' user_assignments.csv keyed by the HubSpot owner, with each past assignment's team). The
Salesforce side is the shared `xs_night` (the same sample, seed and settings, from a local folder: a whole night,
built once per test session for the mart digests and the semantic layer); the HubSpot side is read from an S3
bucket (moto's server on loopback: the object-storage landing, its archive kept in the bucket) and built here
with the steps the marts need (extract, validate, dbt build: no forecast, projection or publish). Every table of the marts schema is
compared with the digests of salesos/warehouse/digest.py, except the marts the forecast step rebuilds from the
forecasts and projections it stores (found in dbt's manifest: the models downstream of the `forecasts`
source), which the HubSpot build leaves empty and which are a function of the marts compared here.
Cost: one XS build of its own instead of two; measured in one process at load 18-23 on 2 cores (2026-12-07), the
Salesforce side this no longer builds took 471 s and the HubSpot side 535 s: the test's own builds are 0.53 of
what they were.

What cannot be equal is not in the marts: the intermediate models keep two ids HubSpot has no equivalent for,
the OpportunityHistory record's Id (HubSpot's property history has none: `<deal>@<time>`) and the UserRole Id
(HubSpot's roles are known by name). A float aggregate whose rows arrive in another order may differ in its
last bits; such a table is compared again with floats to 1e-9 relative.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import duckdb
import pytest
import yaml

from salesos import pipeline
from salesos.extract.landing import kept_archive_exists
from salesos.generate import generate_hubspot
from salesos.run_context import RunContext
from salesos.warehouse.digest import table_digest
from tests.extract.object_storage import upload
from tests.transform.mart_digests import AS_OF, SCALE, SEED, SETTINGS, fed_by_forecasts

pytestmark = pytest.mark.e2e



def _build(ctx: RunContext) -> Path:
    """The steps the marts need: extract, validate, dbt build (the forecast and publish read the marts only)."""
    pipeline.extract(ctx)
    pipeline.validate(ctx)
    pipeline.build(ctx)
    return ctx.build_warehouse


def _rows(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple]:
    """The rows sorted by their non-float values, then their floats rounded (a key two close floats share)."""
    rows = con.execute(f'select * from "{schema}"."{table}"').fetchall()

    def key(row: tuple) -> tuple:
        return tuple((1, f"{v:.6g}") if isinstance(v, float) else (0, str(v)) for v in row)

    return sorted(rows, key=key)


def _close(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(
        math.isclose(x, y, rel_tol=1e-9) if isinstance(x, float) and isinstance(y, float) else x == y
        for x, y in zip(a, b, strict=True))


def test_the_same_crm_exported_by_hubspot_gives_the_marts_of_salesforce(
        tmp_path: Path, request: pytest.FixtureRequest, s3_bucket: str) -> None:
    counts = generate_hubspot(tmp_path / "hubspot", scale=SCALE, seed=SEED, as_of=AS_OF)
    with (tmp_path / "hubspot" / "user_assignments.csv").open(newline="", encoding="utf-8") as fh:
        assignments = list(csv.DictReader(fh))
    assert len(assignments) == counts["user_assignments.csv"] > 0
    assert any(a["Valid To"] for a in assignments) and all(a["Primary Team"] for a in assignments)  # a rep moved
    settings = tmp_path / "hubspot_settings.yml"
    sample = yaml.safe_load((tmp_path / "hubspot" / "settings.yml").read_text(encoding="utf-8"))
    assert sample["team_regions"] and sample["team_segments"]  # the hierarchy travels as teams
    settings.write_text(yaml.safe_dump(yaml.safe_load(SETTINGS.read_text(encoding="utf-8")) | sample),
                        encoding="utf-8")
    # HubSpot's exports as a team lands them in a bucket: read from S3 (a local S3 server), archived there too
    exports = f"s3://{s3_bucket}/crm/hubspot"
    upload(tmp_path / "hubspot", exports)
    ctx = RunContext.create(as_of=AS_OF, exports=exports, warehouse=tmp_path / "hs" / "wh.duckdb",
                            settings_file=settings)
    hubspot = _build(ctx)
    assert kept_archive_exists(f"{exports}/_archive", ctx.run_id)
    # the Salesforce night last: under xdist another worker may be building it meanwhile
    salesforce = request.getfixturevalue("xs_night")
    sf, hs = duckdb.connect(str(salesforce), read_only=True), duckdb.connect(str(hubspot), read_only=True)
    listing = ("select table_name from information_schema.tables where table_schema = 'marts' "
               "and table_type = 'BASE TABLE' order by 1")
    tables = [name for (name,) in sf.execute(listing).fetchall()]
    assert [name for (name,) in hs.execute(listing).fetchall()] == tables
    fed = fed_by_forecasts(ctx.run_dir / "dbt_target" / "manifest.json")
    assert fed and fed <= set(tables), fed  # e.g. the forecast and projection accuracy marts
    tables = [name for name in tables if name not in fed]
    assert {"fct_opportunities", "fct_pipeline_snapshots", "mart_pipeline", "mart_win_rates", "dim_reps",
            "mart_lead_funnel", "mart_activity", "mart_quota_attainment", "fct_opportunity_line_items",
            "mart_product_performance", "dim_contacts"} <= set(tables)
    assert hs.execute("select count(*) from marts.fct_opportunities").fetchone()[0] > 1000
    # products and contacts travel too (HubSpot's line items, products and contacts)
    for table in ("fct_opportunity_line_items", "mart_product_performance", "dim_contacts"):
        assert hs.execute(f"select count(*) from marts.{table}").fetchone()[0] > 100, table
    # the hierarchy survived: regions, segments and teams of the reps as Salesforce has them
    assert hs.execute("select count(distinct region), count(distinct team_id) from marts.dim_reps "
                      "where region <> 'Unassigned'").fetchone() == sf.execute(
        "select count(distinct region), count(distinct team_id) from marts.dim_reps "
        "where region <> 'Unassigned'").fetchone()
    different = [name for name in tables if table_digest(sf, "marts", name) != table_digest(hs, "marts", name)]
    not_close = [name for name in different if not all(
        _close(a, b) for a, b in zip(_rows(sf, "marts", name), _rows(hs, "marts", name), strict=True))]
    assert not_close == []
