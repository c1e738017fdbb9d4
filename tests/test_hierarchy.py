"""The hierarchy is declared once (var hierarchy in dbt_project.yml); Python, the settings and the dbt tests agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from salesos.hierarchy import DBT_PROJECT_FILE, hierarchy, level_names, parse
from salesos.settings import DEFAULT_SETTINGS_FILE, Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "dbt_project" / "models"


def _accepted_levels(yml: Path, model: str) -> list[str]:
    doc = yaml.safe_load(yml.read_text(encoding="utf-8"))
    (m,) = [m for m in doc["models"] if m["name"] == model]
    (col,) = [c for c in m["columns"] if c["name"] == "level"]
    return next(t["accepted_values"]["arguments"]["values"] for t in col["data_tests"] if "accepted_values" in t)


def test_the_project_declares_the_levels_top_to_bottom():
    h = hierarchy()
    assert h.names == ("company", "region", "segment", "team", "rep")
    assert (h.company_key, h.company_name, h.missing_member) == ("all", "All", "unknown")
    assert [lv.key_column for lv in h.levels] == [None, "region", "segment", "team_id", "owner_id"]


def test_python_settings_and_model_tests_read_the_same_levels():
    from forecasting import nightly

    assert nightly.HIERARCHY_LEVELS == level_names()
    assert nightly.NO_TEAM == hierarchy().missing_member  # the key fct_bookings_monthly gives a missing team
    assert Settings().forecast_levels == list(level_names())
    assert yaml.safe_load(DEFAULT_SETTINGS_FILE.read_text(encoding="utf-8"))["forecast_levels"] == list(level_names())
    assert _accepted_levels(MODELS / "marts" / "forecast" / "_forecast.yml", "fct_bookings_monthly") == list(
        level_names())
    for yml in MODELS.rglob("*.yml"):
        for model in yaml.safe_load(yml.read_text(encoding="utf-8")).get("models", []):
            if any(c["name"] == "level" for c in model.get("columns", [])):
                assert set(_accepted_levels(yml, model["name"])) <= set(level_names()), model["name"]


def test_no_model_writes_a_level_name_by_hand():
    """A model that reports by level fans out with fan_out_levels; a hand-written `'team' as level` is a second copy."""
    by_hand = re.compile(r"'[a-z_]+'\s+as\s+(series_)?level\b", re.IGNORECASE)
    offenders = [p.relative_to(ROOT).as_posix() for p in MODELS.rglob("*.sql") if by_hand.search(p.read_text())]
    assert offenders == []
    users = sorted(p.name for p in MODELS.rglob("*.sql") if "fan_out_levels(" in p.read_text())
    assert users == ["int_forecast__bookings_by_series.sql", "int_forecast__call_pipeline.sql",
                     "mart_forecast_calls_accuracy.sql", "mart_quota_attainment.sql"]


def test_settings_refuse_a_forecast_level_the_hierarchy_does_not_have(tmp_path):
    f = tmp_path / "s.yml"
    f.write_text("forecast_levels: [company, owner]\n")
    with pytest.raises(SettingsError, match=r"unknown level\(s\) \['owner'\]"):
        load_settings(f)


@pytest.mark.parametrize("bad, message", [
    ({"vars": {}}, "malformed"),
    ({"vars": {"hierarchy": {"levels": [{"level": "company"}], "company_key": "all"}}}, "malformed"),
    ({"vars": {"hierarchy": {"levels": [{"level": "x", "colour": "red"}], "company_key": "all",
                             "company_name": "All", "missing_member": "?"}}}, "malformed"),
    ({"vars": {"hierarchy": {"levels": [{"level": "rep", "key_column": "owner_id"}], "company_key": "all",
                             "company_name": "All", "missing_member": "?"}}}, "start with"),
    ({"vars": {"hierarchy": {"levels": [{"level": "company"}, {"level": "company", "key_column": "c"}],
                             "company_key": "all", "company_name": "All", "missing_member": "?"}}}, "twice"),
])
def test_a_malformed_hierarchy_is_a_one_line_error_naming_the_file(bad, message):
    with pytest.raises(ValueError, match=message) as err:
        parse(bad, DBT_PROJECT_FILE)
    assert str(DBT_PROJECT_FILE) in str(err.value) and "\n" not in str(err.value)


def hierarchy_literals(path: Path, names: tuple[str, ...]) -> list[str]:
    """Literal tuples, lists or sets in a module that list every level, or every level below the top: a second
    definition of the hierarchy (a subset, such as the reconciliation tree without segment, is a choice of levels)."""
    import ast

    whole, below = set(names), set(names[1:])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            listed = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            if whole <= listed or below <= listed:
                found.append(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}:{node.lineno}")
    return found


def test_no_python_module_writes_the_levels_by_hand():
    """Python reads the levels from salesos.hierarchy; a module's own ("company", "region", ...) is a second copy."""
    files = sorted(p for top in ("salesos", "forecasting", "dags") for p in (ROOT / top).rglob("*.py"))
    assert [hit for p in files for hit in hierarchy_literals(p, level_names())] == []
    from forecasting import projection

    assert projection.LEVELS == level_names()
    assert projection.LEAF == tuple(lv.key_column for lv in hierarchy().levels[1:])
    assert (projection.COMPANY_KEY, projection.UNKNOWN) == (hierarchy().company_key, hierarchy().missing_member)


def test_the_check_finds_a_hand_written_hierarchy(tmp_path):
    code = tmp_path / "m.py"
    code.write_text('LEVELS = ("company", "region", "segment", "team", "rep")\n'
                    'LEAF = ["region", "segment", "team", "rep"]\n'
                    'TREE = ("company", "region", "team", "rep")\n', encoding="utf-8")
    assert hierarchy_literals(code, level_names()) == ["m.py:1", "m.py:2"]
