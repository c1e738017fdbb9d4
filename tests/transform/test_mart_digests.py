"""Every mart and forecast table of one small fixed night is the same as recorded (issue 20).

A refactoring of the dbt models must leave them identical. A change that alters a table on purpose
re-records with `make digests` and names the changed tables in its commit message. About 30 s (scale XS).
The optimised tables (forecasts and the marts computed from them) are compared by value within a relative
tolerance (salesos.warehouse.digest.value_differences): their last digits follow the machine's BLAS kernels.
"""

from __future__ import annotations

import json

import pytest

from salesos.warehouse.digest import OPTIMISED_TABLES, differences, value_differences, warehouse_digests
from tests.transform.mart_digests import RECORDED, recorded_values

pytestmark = pytest.mark.e2e


def test_every_mart_and_forecast_table_is_as_recorded(xs_night):
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))["tables"]
    current = warehouse_digests(xs_night)
    assert any(name.startswith("forecasts.") for name in current)
    exact = set(recorded) | set(current)
    exact -= {name for name in OPTIMISED_TABLES if name in recorded and name in current}
    diff = differences({k: v for k, v in recorded.items() if k in exact}, {k: v for k, v in current.items() if k in exact})
    values = recorded_values()
    assert set(values) == set(OPTIMISED_TABLES)
    for name in sorted(OPTIMISED_TABLES):
        if name in current:
            diff += value_differences(name, values[name], xs_night)
    assert not diff, ("tables differ from tests/transform/mart_digests.json (re-record with `make digests` "
                      "if the change is meant):\n" + "\n".join(diff))
