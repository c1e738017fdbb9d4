"""Rules of the dbt project that a reviewer would otherwise have to remember."""

from pathlib import Path

import yaml

MODELS = Path(__file__).resolve().parents[2] / "dbt_project" / "models"


def _ymls():
    for p in sorted(MODELS.rglob("*.yml")):
        yield p, yaml.safe_load(p.read_text()) or {}


def test_every_unit_test_pins_its_as_of():
    """A unit test's expected rows are for one date: it must not follow the as_of of the run building it."""
    loose = [
        f"{p.relative_to(MODELS)}: {ut['name']}"
        for p, d in _ymls()
        for ut in d.get("unit_tests") or []
        if "as_of" not in ((ut.get("overrides") or {}).get("vars") or {})
    ]
    assert loose == []


def test_every_model_has_a_yml_with_a_description():
    documented = {m["name"]: m.get("description", "") for _, d in _ymls() for m in d.get("models") or []}
    for sql in MODELS.rglob("*.sql"):
        assert sql.stem in documented, f"{sql.relative_to(MODELS)} has no yml entry"
        assert len(documented[sql.stem].strip()) > 20, f"{sql.stem} has no real description"


def test_no_wall_clock_in_models():
    for sql in MODELS.rglob("*.sql"):
        text = sql.read_text().lower()
        for clock in ("current_date", "current_timestamp", "now()", "getdate()"):
            assert clock not in text, f"{sql.relative_to(MODELS)} reads the wall clock ({clock})"
