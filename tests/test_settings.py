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
        ("forecast_prophet_grid: huge\n", "forecast_prophet_grid must be one of full, primary, got 'huge'"),
        ("- a\n- b\n", "mapping"),
        ("source: salesforce\n", "source must be one of exports, fivetran-salesforce, airbyte-salesforce, "
         "fivetran-hubspot"),
        ("source: fivetran-salesforce\nconnector_tables: {opportunty: x}\n",
         "renames opportunty, not a Fivetran Salesforce table"),
        ("connector_tables: [opportunity]\n", "connector_tables must be a mapping"),
        ("projection_simulations: 0\n", "projection_simulations must be at least 1"),
        ("pipeline_snapshot_months: 0\n", "pipeline_snapshot_months must be at least 1"),
        ("projection_retrain_days: 7.5\n", "projection_retrain_days must be a whole number"),
    ],
)
def test_bad_settings_name_file_and_key(tmp_path, text, match):
    p = tmp_path / "bad.yml"
    p.write_text(text)
    with pytest.raises(SettingsError, match=match):
        load_settings(p)


def test_the_default_yaml_holds_every_setting_with_its_schema_default():
    """config/salesos.yml is the readable copy of the schema's defaults: same names, same order, same values."""
    import yaml

    from salesos.settings import DEFAULT_SETTINGS_FILE, setting_defaults

    written = yaml.safe_load(DEFAULT_SETTINGS_FILE.read_text(encoding="utf-8"))
    assert sorted(written) == sorted(setting_defaults())
    assert {k: v for k, v in written.items() if v != setting_defaults()[k]} == {}


def test_the_dbt_vars_mirror_the_settings_dbt_reads_with_the_same_defaults():
    """dbt_project.yml's vars are what a hand-run dbt uses: every dbt setting there with the schema's default."""
    import yaml

    from salesos.settings import DBT_SETTINGS, PROJECT_ROOT, PYTHON_ONLY, setting_defaults

    project = yaml.safe_load((PROJECT_ROOT / "dbt_project" / "dbt_project.yml").read_text(encoding="utf-8"))
    dbt_vars = project["vars"]
    defaults = setting_defaults()
    assert {k: (dbt_vars.get(k, "<missing>"), defaults[k]) for k in DBT_SETTINGS
            if dbt_vars.get(k, "<missing>") != defaults[k]} == {}
    assert set(PYTHON_ONLY) & set(dbt_vars) == set()  # a Python-only setting in the vars would never be set
    assert set(load_settings().dbt_vars()) == set(DBT_SETTINGS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("forecast_horizon: twelve\n", "forecast_horizon must be a whole number, got 'twelve'"),
        ("bi_compat_copy: 'yes'\n", "bi_compat_copy must be true or false, got 'yes'"),
        ("max_export_shrink: lots\n", "max_export_shrink must be a number, got 'lots'"),
        ("max_export_shrink: 2\n", "max_export_shrink must be 0-1, got 2"),
        ("region_map: [EMEA]\n", "region_map must be a mapping of text to text, got ['EMEA']"),
        ("forecast_categories: Commit\n", "forecast_categories must be a list of names, got 'Commit'"),
        ("validate_chunk_rows: 0\n", "validate_chunk_rows must be at least 1, got 0"),
        ("keep_versions: true\n", "keep_versions must be a whole number, got True"),
        ("reporting_currency:\n", "reporting_currency must be text, got None"),
    ],
)
def test_a_value_of_the_wrong_type_is_one_line_naming_file_key_and_type(tmp_path, text, message):
    p = tmp_path / "team.yml"
    p.write_text(text)
    with pytest.raises(SettingsError) as caught:
        load_settings(p)
    assert str(caught.value) == f"{p}: {message}"


def test_settings_and_run_options_are_ints_and_floats_as_declared(tmp_path):
    p = tmp_path / "team.yml"
    p.write_text("max_export_shrink: 1\nload_scratch_bytes: 0\n")
    s = load_settings(p)
    assert s.max_export_shrink == 1.0 and isinstance(s.max_export_shrink, float)
    assert s.load_scratch_bytes == 0
