"""The forecast tables are defined once, by the Python that writes them (FORECAST_DDL, PROJECTION_DDL).

The CRM's dbt sources and staging are generated from salesos/contract.py; the forecast step's two tables are
written by Python, so their DDL is the definition and the hand-written dbt source (column list) and staging
model (one cast per column, renamed where staging renames) are checked against it here: a column added to,
dropped from or retyped in the DDL fails this test until the source and the staging model follow.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from forecasting.nightly import FORECAST_DDL
from forecasting.projection_nightly import PROJECTION_DDL

ROOT = Path(__file__).resolve().parents[2]
STAGING = ROOT / "dbt_project" / "models" / "staging" / "forecasts"
# DuckDB type in the DDL -> the cast a staging model writes (the string and float macros are the target's types)
CASTS = {"varchar": "{{ string_type() }}", "double": "{{ float_type() }}", "date": "date", "integer": "integer",
         "boolean": "boolean"}
TABLES = {"fct_forecasts": (FORECAST_DDL, "stg_forecasts__forecasts"),
          "fct_period_projections": (PROJECTION_DDL, "stg_forecasts__period_projections")}


def ddl_columns(ddl: str) -> list[tuple[str, str]]:
    """(column, type) in table order from a `create table ... (...)` statement."""
    body = ddl.split("(", 1)[1].rsplit(")", 1)[0]
    return [(line.split()[0], line.split()[1].lower()) for line in body.splitlines() if line.strip()]


def staging_casts(sql: str) -> list[tuple[str, str, str]]:
    """(source column, cast type, staged name) of each `cast(x as t) as y` of a staging model."""
    return re.findall(r"cast\((\w+) as (.+?)\) as (\w+)", sql)


def source_columns(table: str) -> list[str]:
    doc = yaml.safe_load((STAGING / "_forecasts__sources.yml").read_text(encoding="utf-8"))
    (source,) = doc["sources"]
    (t,) = [t for t in source["tables"] if t["name"] == table]
    return [c["name"] for c in t["columns"]]


@pytest.mark.parametrize("table", sorted(TABLES))
def test_the_dbt_source_lists_the_ddl_columns_in_order(table):
    ddl, _ = TABLES[table]
    assert source_columns(table) == [name for name, _ in ddl_columns(ddl)]


@pytest.mark.parametrize("table", sorted(TABLES))
def test_the_staging_model_casts_every_ddl_column_once_by_its_type(table):
    ddl, model = TABLES[table]
    sql = (STAGING / f"{model}.sql").read_text(encoding="utf-8")
    casts = staging_casts(sql)
    assert [(column, cast) for column, cast, _ in casts] == [(name, CASTS[kind]) for name, kind in ddl_columns(ddl)]
    staged = [name for _, _, name in casts]
    assert len(set(staged)) == len(staged), "two columns staged under one name"
    doc = yaml.safe_load((STAGING / "_forecasts__models.yml").read_text(encoding="utf-8"))
    (documented,) = [m for m in doc["models"] if m["name"] == model]
    assert {c["name"] for c in documented["columns"]} <= set(staged), "the model's yml names a column it lacks"


def test_the_check_catches_a_column_the_staging_model_lacks():
    ddl = FORECAST_DDL.replace("    is_backtest boolean not null default false\n",
                               "    is_backtest boolean not null default false,\n    score double\n")
    sql = (STAGING / "stg_forecasts__forecasts.sql").read_text(encoding="utf-8")
    assert ddl_columns(ddl)[-1] == ("score", "double")
    assert [(c, t) for c, t, _ in staging_casts(sql)] != [(n, CASTS[k]) for n, k in ddl_columns(ddl)]


def test_the_source_description_names_where_the_table_is_defined():
    text = (STAGING / "_forecasts__sources.yml").read_text(encoding="utf-8")
    assert "forecasting/nightly.py, FORECAST_DDL" in text and "forecasting/projection_nightly.py, PROJECTION_DDL" in text
