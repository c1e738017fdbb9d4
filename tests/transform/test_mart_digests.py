"""Every mart and forecast table of one small fixed night is the same as recorded (issue 20).

A refactoring of the dbt models must leave them identical. A change that alters a table on purpose
re-records with `make digests` and names the changed tables in its commit message. About 30 s (scale XS).
"""

from __future__ import annotations

import json

import pytest

from salesos.warehouse.digest import differences, warehouse_digests
from tests.transform.mart_digests import RECORDED

pytestmark = pytest.mark.e2e


def test_every_mart_and_forecast_table_is_as_recorded(xs_night):
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))["tables"]
    current = warehouse_digests(xs_night)
    assert any(name.startswith("forecasts.") for name in current)
    diff = differences(recorded, current)
    assert not diff, ("tables differ from tests/transform/mart_digests.json (re-record with `make digests` "
                      "if the change is meant):\n" + "\n".join(diff))
