"""Settings a sales-operations team sets once: fiscal year, currency, stages, mappings.

The defaults live in `config/salesos.yml`; a team passes its own file with `--settings` (or the
`SALESOS_SETTINGS` environment variable for Airflow). The same values are handed to dbt as vars, so
each setting is declared in one place only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SETTINGS_FILE = PROJECT_ROOT / "config" / "salesos.yml"


# Settings used by the Python steps only (validation and publishing), not passed to dbt.
PYTHON_ONLY = (
    "max_export_age_days",
    "max_export_shrink",
    "exports_optional_for_good",
    "max_export_days_after_as_of",
    "bi_compat_copy",
    "finance_exports",
    "keep_versions",
    "forecast_horizon",
    "forecast_origins",
    "forecast_levels",
    "forecast_prophet_grid",
    "forecast_reuse_unchanged",
    "number_decimal_separator",
    "number_thousands_separator",
    "export_encoding",
    "validate_chunk_rows",
    "load_scratch_bytes",
)

# How the loader may read the exports' numbers and text (salesos/extract/load.py says what each means).
DECIMAL_SEPARATORS = ("auto", ".", ",")
THOUSANDS_SEPARATORS = ("auto", ",", ".", " ", "'", "none")
EXPORT_ENCODINGS = ("auto", "utf-8", "utf-16", "windows-1252", "latin-1")


class SettingsError(ValueError):
    """A settings file that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class Settings:
    fiscal_year_start_month: int = 2
    reporting_currency: str = "USD"
    stage_order: list[str] = field(default_factory=list)
    # The settings' own word on which stages are closed (the last source: docs/export-contract.md, "Stages").
    closed_won_stages: list[str] = field(default_factory=list)
    closed_lost_stages: list[str] = field(default_factory=list)
    forecast_categories: list[str] = field(default_factory=list)
    region_source: str = "division"
    region_map: dict[str, str] = field(default_factory=dict)
    unassigned_region: str = "Unassigned"
    segment_bands: list[dict[str, Any]] = field(default_factory=list)
    unknown_segment: str = "Unknown"
    max_export_age_days: int = 3
    max_export_shrink: float = 0.5
    exports_optional_for_good: list[str] = field(default_factory=list)
    max_export_days_after_as_of: int = 1
    bi_compat_copy: bool = True
    finance_exports: bool = True
    keep_versions: int = 5
    forecast_horizon: int = 12
    forecast_origins: int = 6
    forecast_levels: list[str] = field(default_factory=lambda: ["company", "region", "segment", "team", "rep"])
    forecast_prophet_grid: str = "primary"
    forecast_reuse_unchanged: bool = True
    number_decimal_separator: str = "auto"
    number_thousands_separator: str = "auto"
    export_encoding: str = "auto"
    validate_chunk_rows: int = 1_000_000
    load_scratch_bytes: int = 2_000_000_000

    def dbt_vars(self) -> dict[str, Any]:
        """The settings the dbt models use, as vars (the dbt project declares the same names)."""
        d = asdict(self)
        for not_for_dbt in PYTHON_ONLY:
            d.pop(not_for_dbt)
        return d


def load_settings(path: str | Path | None = None) -> Settings:
    """Read settings, layering a user's file over the packaged defaults."""
    defaults = _read_yaml(DEFAULT_SETTINGS_FILE)
    values = dict(defaults)
    if path is not None and Path(path).resolve() != DEFAULT_SETTINGS_FILE:
        values.update(_read_yaml(Path(path)))
    known = set(Settings.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    source = path or DEFAULT_SETTINGS_FILE
    if unknown:
        raise SettingsError(f"{source}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    settings = Settings(**values)
    if not 1 <= int(settings.fiscal_year_start_month) <= 12:
        raise SettingsError(f"{source}: fiscal_year_start_month must be 1-12, got {settings.fiscal_year_start_month}")
    if settings.region_source not in ("division", "role"):
        raise SettingsError(f"{source}: region_source must be 'division' or 'role', got {settings.region_source!r}")
    unknown_levels = set(settings.forecast_levels) - {"company", "region", "segment", "team", "rep"}
    if unknown_levels:
        raise SettingsError(f"{source}: forecast_levels has unknown level(s) {sorted(unknown_levels)}")
    if settings.forecast_prophet_grid not in ("full", "primary"):
        raise SettingsError(f"{source}: forecast_prophet_grid must be full or primary, "
                            f"not {settings.forecast_prophet_grid!r}")
    if settings.forecast_horizon < 1 or settings.forecast_origins < 1:
        raise SettingsError(f"{source}: forecast_horizon and forecast_origins must be at least 1")
    _check_export_guards(settings, source)
    _check_formats(settings, source)
    _check_stages(settings, source)
    for i, band in enumerate(settings.segment_bands):
        if set(band) != {"name", "min_employees"}:
            raise SettingsError(f"{source}: segment_bands[{i}] needs exactly name and min_employees, got {band}")
    return settings


def _check_export_guards(settings: Settings, source: str | Path) -> None:
    """The run-level guards' settings: only optional export files can be gone for good."""
    from salesos.contract import EXPORTS

    files = {e.filename.lower(): e for e in EXPORTS}
    if not isinstance(settings.exports_optional_for_good, list):
        raise SettingsError(f"{source}: exports_optional_for_good must be a list of export file names")
    for name in settings.exports_optional_for_good:
        export = files.get(str(name).lower())
        if export is None:
            raise SettingsError(f"{source}: exports_optional_for_good names {name!r}, not an export file "
                                f"(known: {', '.join(e.filename for e in EXPORTS)})")
        if export.required:
            raise SettingsError(f"{source}: exports_optional_for_good names {export.filename}, a required export")
    days = settings.max_export_days_after_as_of
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        raise SettingsError(f"{source}: max_export_days_after_as_of must be a whole number of days >= 0, got {days!r}")


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
