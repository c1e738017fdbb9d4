import pytest

from salesos.settings import SettingsError, load_settings


def test_defaults_load_and_become_dbt_vars():
    s = load_settings()
    assert s.fiscal_year_start_month == 2
    assert s.reporting_currency == "USD"
    assert "Closed Won" in s.stage_order
    assert s.dbt_vars()["segment_bands"][0]["name"] == "SMB"


def test_user_file_overrides_defaults(tmp_path):
    p = tmp_path / "s.yml"
    p.write_text("fiscal_year_start_month: 1\nreporting_currency: EUR\n")
    s = load_settings(p)
    assert (s.fiscal_year_start_month, s.reporting_currency) == (1, "EUR")
    assert s.stage_order  # default kept


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("fiscal_year_start_month: 13\n", "fiscal_year_start_month must be 1-12"),
        ("fiscal_yaer_start_month: 1\n", "unknown setting.*fiscal_yaer_start_month"),
        ("region_source: manager\n", "region_source"),
        ("forecast_prophet_grid: huge\n", "forecast_prophet_grid must be full or primary"),
        ("- a\n- b\n", "mapping"),
        ("source: salesforce\n", "source must be one of exports, fivetran-salesforce, airbyte-salesforce, "
         "fivetran-hubspot"),
        ("source: fivetran-salesforce\nconnector_tables: {opportunty: x}\n",
         "renames opportunty, not a Fivetran Salesforce table"),
        ("connector_tables: [opportunity]\n", "connector_tables must map"),
    ],
)
def test_bad_settings_name_file_and_key(tmp_path, text, match):
    p = tmp_path / "bad.yml"
    p.write_text(text)
    with pytest.raises(SettingsError, match=match):
        load_settings(p)
