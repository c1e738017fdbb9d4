"""Every mart and forecast table of one small fixed night is the same as recorded (issue 20).

A refactoring of the dbt models must leave them identical. A change that alters a table on purpose
re-records with `make digests` and names the changed tables in its commit message. About 30 s (scale XS).
The optimised tables (forecasts and the marts computed from them) are compared by value within a relative
tolerance (salesos.warehouse.digest.value_differences): their last digits follow the machine's BLAS kernels.
"""

from __future__ import annotations

import json

import pytest

from salesos.warehouse.digest import OPTIMISED_TABLES, warehouse_differences
from tests.transform.mart_digests import RECORDED, recorded_values

pytestmark = pytest.mark.e2e


def test_every_mart_and_forecast_table_is_as_recorded(xs_night):
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))["tables"]
    assert any(name.startswith("forecasts.") for name in recorded)
    values = recorded_values()
    assert set(values) == set(OPTIMISED_TABLES)
    diff = warehouse_differences(xs_night, recorded, values)
    assert not diff, ("tables differ from tests/transform/mart_digests.json (re-record with `make digests` "
                      "if the change is meant):\n" + "\n".join(diff))
