"""Build the digest sample and (re-)record its table digests: `make digests` (python -m tests.transform.mart_digests).

The digest test (test_mart_digests.py) compares every table of the marts and forecasts schemas of one small,
fixed night with the digests recorded here. A change that alters a table on purpose re-records them with this
one command and says in its commit which tables changed and why. The tables whose floats come from an
optimiser (`OPTIMISED_TABLES`: forecasts, and the marts computed from them) are recorded by value too
(mart_values.json.gz), compared within a relative tolerance: their last digits follow the CPU's BLAS kernels.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from salesos.generate import generate
from salesos.pipeline import run_all
from salesos.run_context import RunContext
from salesos.warehouse.digest import (
    SIGNIFICANT_DIGITS,
    VALUE_DIGITS,
    VALUE_TOLERANCE,
    warehouse_digests,
    warehouse_values,
)

AS_OF = date(2026, 10, 31)
SCALE = "XS"
SEED = 7
ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "tests" / "fast_settings.yml"
RECORDED = Path(__file__).with_name("mart_digests.json")
RECORDED_VALUES = Path(__file__).with_name("mart_values.json.gz")


def recorded_values() -> dict[str, dict]:
    """The recorded values of the optimised tables (`salesos.warehouse.digest.table_values`), by table."""
    with gzip.open(RECORDED_VALUES, "rt", encoding="utf-8") as f:
        return json.load(f)["tables"]


def build_sample_night(work: Path) -> Path:
    """One full night (extract to publish) on the XS sample; returns the published warehouse."""
    generate(work / "exports", scale=SCALE, seed=SEED, as_of=AS_OF)
    ctx = RunContext.create(as_of=AS_OF, exports=work / "exports", warehouse=work / "wh" / "salesos.duckdb",
                            settings_file=SETTINGS)
    run_all(ctx)
    return ctx.warehouse


def sample_exports(warehouse: Path) -> Path:
    """The export folder the night of `build_sample_night` was run on (read it, never write to it)."""
    return warehouse.parent.parent / "exports"


def fed_by_forecasts(manifest: Path, schemas: tuple[str, ...] = ("marts",)) -> set[str]:
    """The models of `schemas` downstream of the `forecasts` source, from dbt's manifest.

    What a whole night (the shared `xs_night`) rebuilds after its forecast and projection stored their rows,
    and a build without the forecast leaves empty: the tests that compare such a build with the sample night
    compare everything else (a function of what they compare and of the forecasts).
    """
    nodes = json.loads(manifest.read_text(encoding="utf-8"))
    parents = nodes["parent_map"]
    fed: set[str] = set()

    def feeds(node: str, seen: set[str]) -> bool:
        if node.startswith("source.") and ".forecasts." in node:
            return True
        seen.add(node)
        return any(feeds(p, seen) for p in parents.get(node, ()) if p not in seen)

    for unique_id, node in nodes["nodes"].items():
        if node["resource_type"] == "model" and node["schema"] in schemas and feeds(unique_id, set()):
            fed.add(node["alias"] or node["name"])
    return fed


def record(digests: dict[str, str], by_family: dict[str, str] | None = None,
           values: dict[str, dict] | None = None) -> None:
    """Write the digests (and the optimised tables' values) with what they were built from.

    by_family: the same tables with integer types by family (`integer_family`), what the spark night is compared
    with (tests/warehouse/test_spark.py): Spark's sums are BIGINT where DuckDB's are HUGEINT.
    """
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    doc = {"built_from": {"scale": SCALE, "seed": SEED, "as_of": AS_OF.isoformat(), "settings": SETTINGS.name,
                          "significant_digits": SIGNIFICANT_DIGITS, "recorded_on_top_of_commit": commit},
           "tables": digests} | ({"tables_integer_family": by_family} if by_family else {})
    RECORDED.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    if values is not None:
        meta = doc["built_from"] | {"value_digits": VALUE_DIGITS, "value_tolerance": VALUE_TOLERANCE}
        text = json.dumps({"built_from": meta, "tables": values}, sort_keys=True, separators=(",", ":"))
        # mtime=0: the same values give the same bytes (no spurious change in git)
        RECORDED_VALUES.write_bytes(gzip.compress(text.encode(), compresslevel=9, mtime=0))


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="salesos-digests-") as tmp:
        warehouse = build_sample_night(Path(tmp))
        digests = warehouse_digests(warehouse)
        by_family = warehouse_digests(warehouse, integer_family=True)
        values = warehouse_values(warehouse)
    old = json.loads(RECORDED.read_text(encoding="utf-8"))["tables"] if RECORDED.exists() else {}
    record(digests, by_family, values)
    changed = sorted(k for k in set(old) | set(digests) if old.get(k) != digests.get(k))
    print(f"recorded {len(digests)} tables in {RECORDED.relative_to(ROOT)}; changed: {', '.join(changed) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
