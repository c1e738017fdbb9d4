"""Settings a sales-operations team sets once: fiscal year, currency, stages, mappings.

`Settings` below is the one schema: each setting's name, type, default, rules and whether dbt reads it.
`config/salesos.yml` is its commented copy of the defaults and the dbt settings are mirrored in
`dbt_project.yml`'s vars (for a hand-run dbt); tests/test_settings.py checks both agree with the schema.
A team passes its own file with `--settings` (or the DAG param / `SALESOS_SETTINGS` for Airflow); the
dbt settings are handed to dbt as vars on every run.
"""

from __future__ import annotations

import copy
import typing
from dataclasses import Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from salesos.hierarchy import level_names

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SETTINGS_FILE = PROJECT_ROOT / "config" / "salesos.yml"

# How the loader may read the exports' numbers and text (salesos/extract/load.py says what each means).
DECIMAL_SEPARATORS = ("auto", ".", ",")
THOUSANDS_SEPARATORS = ("auto", ",", ".", " ", "'", "none")
EXPORT_ENCODINGS = ("auto", "utf-8", "utf-16", "windows-1252", "latin-1")


class SettingsError(ValueError):
    """A settings file that cannot be used; the message names the file and key."""


def setting(
    default: Any,
    *,
    dbt: bool,
    choices: tuple[str, ...] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    expected: str | None = None,
) -> Any:
    """One setting of the schema: its default, whether the dbt models get it as a var, and what values it takes.

    The dataclass field's type is the setting's type; `load_settings` checks every value against both, so a
    setting is declared here once (config/salesos.yml and dbt_project.yml's vars are checked against it by
    tests/test_settings.py). `expected` words the type in the error message when the default wording is vague.
    """
    meta = {"dbt": dbt, "choices": choices, "minimum": minimum, "maximum": maximum, "expected": expected}
    if callable(default):  # a default read from where the thing is defined (e.g. the hierarchy's levels)
        return field(default_factory=default, metadata=meta)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """The schema of the settings file: each field's type, default and rules (see `setting`)."""

    fiscal_year_start_month: int = setting(2, dbt=True, minimum=1, maximum=12)
    reporting_currency: str = setting("USD", dbt=True)
    stage_order: list[str] = setting(
        ["Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
         "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review", "Closed Won", "Closed Lost"],
        dbt=True, expected="a list of stage names",
    )
    # The settings' own word on which stages are closed (the last source: docs/export-contract.md, "Stages").
    closed_won_stages: list[str] = setting(["Closed Won"], dbt=True, expected="a list of stage names")
    closed_lost_stages: list[str] = setting(["Closed Lost"], dbt=True, expected="a list of stage names")
    forecast_categories: list[str] = setting(["Pipeline", "Best Case", "Commit", "Closed", "Omitted"], dbt=True)
    region_source: str = setting("division", dbt=True, choices=("division", "role"))
    region_map: dict[str, str] = setting({}, dbt=True)
    unassigned_region: str = setting("Unassigned", dbt=True)
    segment_bands: list[dict[str, Any]] = setting(
        [{"name": "SMB", "min_employees": 0}, {"name": "Mid-Market", "min_employees": 200},
         {"name": "Enterprise", "min_employees": 2000}],
        dbt=True,
    )
    unknown_segment: str = setting("Unknown", dbt=True)
    # Used by the Python steps only (validation, loading, publishing, forecasting), not passed to dbt.
    max_export_age_days: int = setting(3, dbt=False, minimum=0)
    max_export_shrink: float = setting(0.5, dbt=False, minimum=0, maximum=1)
    exports_optional_for_good: list[str] = setting([], dbt=False, expected="a list of export file names")
    max_export_days_after_as_of: int = setting(1, dbt=False, minimum=0, expected="a whole number of days")
    bi_compat_copy: bool = setting(True, dbt=False)
    finance_exports: bool = setting(True, dbt=False)
    keep_versions: int = setting(5, dbt=False, minimum=1)
    # The nightly report (salesos/publish/report): an open deal is stale after this many days without a stage
    # change, and pushed repeatedly once its close date moved later this many times.
    report_stale_days: int = setting(30, dbt=False, minimum=1)
    report_pushed_times: int = setting(2, dbt=False, minimum=1)
    forecast_horizon: int = setting(12, dbt=False, minimum=1)
    forecast_origins: int = setting(6, dbt=False, minimum=1)
    # every level of the sales hierarchy (dbt var `hierarchy`, read through salesos/hierarchy.py)
    forecast_levels: list[str] = setting(lambda: list(level_names()), dbt=False)
    forecast_prophet_grid: str = setting("primary", dbt=False, choices=("full", "primary"))
    # how Prophet's MAP is computed (forecasting.prophet_fit.PROPHET_BACKENDS and its default: a test checks)
    forecast_prophet_backend: str = setting("scipy", dbt=False, choices=("scipy", "cmdstan"))
    forecast_reuse_unchanged: bool = setting(True, dbt=False)
    forecast_executor: str = setting("local", dbt=False, choices=("local", "spark"))
    number_decimal_separator: str = setting("auto", dbt=False)
    number_thousands_separator: str = setting("auto", dbt=False)
    export_encoding: str = setting("auto", dbt=False)
    validate_chunk_rows: int = setting(1_000_000, dbt=False, minimum=1)
    load_scratch_bytes: int = setting(2_000_000_000, dbt=False, minimum=0)
    # Months of daily pipeline states kept in marts.fct_pipeline_snapshots (a dbt var): what mart_pipeline
    # reports over and what the in-quarter projection learns from.
    pipeline_snapshot_months: int = setting(13, dbt=True, minimum=1)
    # The in-quarter projection (forecasting/projection.py): replayed quarters on a first night, simulated
    # outcomes per interval, days between retrains of the deal model.
    projection_replay_quarters: int = setting(4, dbt=False, minimum=1)
    projection_simulations: int = setting(1000, dbt=False, minimum=1)
    projection_retrain_days: int = setting(28, dbt=False, minimum=1)
    # The source of the CRM data (salesos.extract.connectors): exports, or a connector's landed tables.
    source: str = setting("exports", dbt=False)
    connector_schema: str | None = setting(None, dbt=False)  # None: main in a DuckDB file, public in PostgreSQL
    connector_tables: dict[str, str] = setting(
        {}, dbt=False, expected="a mapping of connector table names to landed names"
    )
    # HubSpot has no Division or Department: a HubSpot team's region and segment (team name -> value; a team
    # not listed takes its nearest parent team's), which become its members' Division and Department.
    team_regions: dict[str, str] = setting({}, dbt=False, expected="a mapping of HubSpot team names to regions")
    team_segments: dict[str, str] = setting({}, dbt=False, expected="a mapping of HubSpot team names to segments")

    def dbt_vars(self) -> dict[str, Any]:
        """The settings the dbt models use, as vars (the dbt project declares the same names)."""
        return {k: v for k, v in asdict(self).items() if k in DBT_SETTINGS}


def _is_dbt(f: Field) -> bool:
    return bool(f.metadata.get("dbt", True))  # a field declared without `setting` goes to dbt, as before


DBT_SETTINGS = tuple(f.name for f in fields(Settings) if _is_dbt(f))
# Settings used by the Python steps only, not passed to dbt.
PYTHON_ONLY = tuple(f.name for f in fields(Settings) if not _is_dbt(f))


def setting_defaults() -> dict[str, Any]:
    """Every setting's default, in declaration order (what config/salesos.yml must hold)."""
    return asdict(Settings())


def _describe(hint: Any) -> str:
    """A type in the words of an error message."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return {str: "a list of names", int: "a list of whole numbers"}.get(args[0], "a list of mappings")
    if origin is dict:
        return "a mapping of text to text" if args == (str, str) else "a mapping"
    return {int: "a whole number", float: "a number", str: "text", bool: "true or false"}.get(hint, "a value")


def _matches(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin is list:
        return isinstance(value, list) and all(_matches(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_matches(k, args[0]) and _matches(v, args[1])
                                               for k, v in value.items())
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint)


def _checked(source: str | Path, f: Field, hint: Any, value: Any) -> Any:
    """The value of one setting, checked against its type and rules; else one line naming file, key and type."""
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    if not _matches(value, hint):
        expected = f.metadata.get("expected") or _describe(hint)
        raise SettingsError(f"{source}: {f.name} must be {expected}, got {shown}")
    choices, low, high = (f.metadata.get(k) for k in ("choices", "minimum", "maximum"))
    if choices and value not in choices:
        raise SettingsError(f"{source}: {f.name} must be one of {', '.join(choices)}, got {shown}")
    if low is not None and high is not None and not low <= value <= high:
        raise SettingsError(f"{source}: {f.name} must be {low}-{high}, got {shown}")
    if low is not None and value < low:
        raise SettingsError(f"{source}: {f.name} must be at least {low}, got {shown}")
    return float(value) if hint is float else value


def load_settings(path: str | Path | None = None) -> Settings:
    """Read settings, layering a user's file over the packaged defaults; every value checked by the schema."""
    user = {} if path is None or Path(path).resolve() == DEFAULT_SETTINGS_FILE else _read_yaml(Path(path))
    values = _read_yaml(DEFAULT_SETTINGS_FILE) | user
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(values) - known)
    source = path or DEFAULT_SETTINGS_FILE
    if unknown:
        raise SettingsError(f"{source}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    hints = typing.get_type_hints(Settings)
    for f in fields(Settings):
        if f.name in values:  # a bad default is the packaged file's mistake, a bad value the user's
            values[f.name] = _checked(source if f.name in user else DEFAULT_SETTINGS_FILE, f, hints[f.name],
                                      values[f.name])
    settings = Settings(**values)
    unknown_levels = set(settings.forecast_levels) - set(level_names())
    if unknown_levels:
        raise SettingsError(f"{source}: forecast_levels has unknown level(s) {sorted(unknown_levels)}")
    _check_export_guards(settings, source)
    _check_formats(settings, source)
    _check_stages(settings, source)
    _check_source(settings, source)
    for i, band in enumerate(settings.segment_bands):
        if set(band) != {"name", "min_employees"}:
            raise SettingsError(f"{source}: segment_bands[{i}] needs exactly name and min_employees, got {band}")
    return settings


def _check_export_guards(settings: Settings, source: str | Path) -> None:
    """The run-level guards' settings: only optional export files can be gone for good."""
    from salesos.contract import EXPORTS

    files = {e.filename.lower(): e for e in EXPORTS}
    for name in settings.exports_optional_for_good:
        export = files.get(str(name).lower())
        if export is None:
            raise SettingsError(f"{source}: exports_optional_for_good names {name!r}, not an export file "
                                f"(known: {', '.join(e.filename for e in EXPORTS)})")
        if export.required:
            raise SettingsError(f"{source}: exports_optional_for_good names {export.filename}, a required export")


def _check_formats(settings: Settings, source: str | Path) -> None:
    """The number and encoding settings take a few values only; a typo must not read every amount wrong."""
    decimal, thousands = str(settings.number_decimal_separator), str(settings.number_thousands_separator)
    if decimal not in DECIMAL_SEPARATORS:
        raise SettingsError(f"{source}: number_decimal_separator must be one of {DECIMAL_SEPARATORS}, got {decimal!r}")
    if thousands not in THOUSANDS_SEPARATORS:
        raise SettingsError(
            f"{source}: number_thousands_separator must be one of {THOUSANDS_SEPARATORS}, got {thousands!r}"
        )
    if thousands == decimal != "auto":
        raise SettingsError(f"{source}: number_thousands_separator and number_decimal_separator are both {decimal!r}")
    if str(settings.export_encoding).lower() not in EXPORT_ENCODINGS:
        raise SettingsError(
            f"{source}: export_encoding must be one of {EXPORT_ENCODINGS}, got {settings.export_encoding!r}"
        )


def _check_source(settings: Settings, source: str | Path) -> None:
    """The source must be one salesos reads; renamed connector tables must be its own names."""
    from salesos.extract.connectors import SOURCES, connector_for
    from salesos.extract.connectors.translate import check_overrides
    from salesos.extract.landing import ExportError

    if settings.source not in SOURCES:
        raise SettingsError(f"{source}: source must be one of {', '.join(SOURCES)}, got {settings.source!r}")
    tables = settings.connector_tables
    if not isinstance(tables, dict) or not all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                               for k, v in tables.items()):
        raise SettingsError(f"{source}: connector_tables must map connector table names to landed names")
    connector = connector_for(settings.source)
    if connector is not None:
        try:
            check_overrides(connector, tables)
        except ExportError as exc:
            raise SettingsError(f"{source}: {exc}") from exc


def settings_stage_flags(settings: Settings) -> dict[str, tuple[bool, bool]]:
    """(is_closed, is_won) of every stage the settings name: listed in stage_order and not in a closed list = open.

    The dbt model int_stages__resolved reads the same three vars the same way; the validate step uses this.
    """
    flags = {name: (False, False) for name in settings.stage_order}
    flags |= {name: (True, False) for name in settings.closed_lost_stages}
    flags |= {name: (True, True) for name in settings.closed_won_stages}
    return flags


def _check_stages(settings: Settings, source: str | Path) -> None:
    for key in ("stage_order", "closed_won_stages", "closed_lost_stages"):
        names = getattr(settings, key)
        if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
            raise SettingsError(f"{source}: {key} must be a list of stage names, got {names!r}")
    both = sorted(set(settings.closed_won_stages) & set(settings.closed_lost_stages))
    if both:
        raise SettingsError(
            f"{source}: stage(s) {', '.join(both)} listed in both closed_won_stages and closed_lost_stages"
        )


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SettingsError(f"settings file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a mapping of settings at the top level")
    return data
