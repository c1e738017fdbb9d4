"""Stage metadata, never stage names: the settings, the contract, the generator and the validate step's stage check.

The dbt side (int_stages__resolved's precedence and ranks) has its unit tests in
dbt_project/models/intermediate/pipeline/_int_stages.yml; the renamed-stages sample end to end is in
tests/test_renamed_stages.py.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import duckdb
import pytest

from salesos import pipeline
from salesos.contract import EXPORTS, OPPORTUNITY_HISTORY, OPPORTUNITY_STAGE, export_by_filename
from salesos.generate import generate
from salesos.run_context import RunContext
from salesos.settings import SettingsError, load_settings, settings_stage_flags
from salesos.validate.gx_checks import ValidationFailed, ranked_stage_names
from salesos.validate.stages import UnknownStages, unknown_stages

from ..conftest import write_csv

AS_OF = date(2026, 10, 31)


# -- settings -----------------------------------------------------------------------------------


def test_default_settings_say_which_stages_are_closed_and_reach_dbt():
    s = load_settings()
    assert (s.closed_won_stages, s.closed_lost_stages) == (["Closed Won"], ["Closed Lost"])
    flags = settings_stage_flags(s)
    assert flags["Closed Won"] == (True, True) and flags["Closed Lost"] == (True, False)
    assert flags["Prospecting"] == (False, False)
    assert {"closed_won_stages", "closed_lost_stages", "stage_order"} <= set(s.dbt_vars())


def test_a_settings_file_with_only_stage_order_still_loads(tmp_path):
    p = tmp_path / "old.yml"
    p.write_text("stage_order: [Discovery, Signed, Dead]\n")
    s = load_settings(p)
    assert s.stage_order == ["Discovery", "Signed", "Dead"]
    assert s.closed_won_stages == ["Closed Won"]  # default kept: a file from before the setting still works
    p.write_text("stage_order: [Discovery, Signed, Dead]\nclosed_won_stages: [Signed]\nclosed_lost_stages: [Dead]\n")
    assert settings_stage_flags(load_settings(p)) == {
        "Discovery": (False, False), "Signed": (True, True), "Dead": (True, False)}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("closed_won_stages: [Signed]\nclosed_lost_stages: [Signed]\n", "Signed listed in both"),
        ("closed_won_stages: Signed\n", "closed_won_stages must be a list of stage names"),
        ("stage_order: [Prospecting, '']\n", "stage_order must be a list of stage names"),
    ],
)
def test_bad_stage_settings_name_the_file_and_key(tmp_path, text, match):
    p = tmp_path / "bad.yml"
    p.write_text(text)
    with pytest.raises(SettingsError, match=match):
        load_settings(p)


# -- contract -----------------------------------------------------------------------------------


def test_the_contract_has_an_optional_stage_export_and_optional_history_flags():
    assert OPPORTUNITY_STAGE in EXPORTS and not OPPORTUNITY_STAGE.required
    assert export_by_filename("opportunitystage.csv") is OPPORTUNITY_STAGE
    required = {f.api_name for f in OPPORTUNITY_STAGE.fields if f.required}
    assert required == {"Id", "MasterLabel", "IsClosed", "IsWon"}
    assert {"ApiName", "DefaultProbability", "SortOrder", "IsActive"} <= {f.api_name for f in OPPORTUNITY_STAGE.fields}
    flags = {f.api_name: f for f in OPPORTUNITY_HISTORY.fields if f.api_name in ("IsClosed", "IsWon")}
    assert set(flags) == {"IsClosed", "IsWon"} and not any(f.required for f in flags.values())


# -- generator ----------------------------------------------------------------------------------

RENAME = {"Closed Won": "Signed", "Closed Lost": "Dead", "Proposal/Price Quote": "Contract Sent"}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_generator_writes_the_stage_export_and_the_same_sample_under_renamed_stages(tmp_path):
    plain, renamed, bare = tmp_path / "plain", tmp_path / "renamed", tmp_path / "bare"
    counts = generate(plain, scale="XS", seed=3, as_of=AS_OF)
    generate(renamed, scale="XS", seed=3, as_of=AS_OF, rename_stages=RENAME)
    generate(bare, scale="XS", seed=3, as_of=AS_OF, stage_export=False)
    assert counts[OPPORTUNITY_STAGE.filename] == 10
    con = duckdb.connect()
    stages = con.execute(
        f"select MasterLabel, IsClosed, IsWon, SortOrder from read_csv('{plain / 'OpportunityStage.csv'}', "
        "all_varchar=true) order by SortOrder::int"
    ).fetchall()
    assert [s[0] for s in stages] == load_settings().stage_order
    assert [(s[1], s[2]) for s in stages if s[0].startswith("Closed")] == [("true", "true"), ("true", "false")]
    renamed_stages = [r[0] for r in con.execute(
        f"select MasterLabel from read_csv('{renamed / 'OpportunityStage.csv'}', all_varchar=true)").fetchall()]
    assert {"Signed", "Dead", "Contract Sent"} <= set(renamed_stages)
    for name in ("Opportunity.csv", "OpportunityHistory.csv"):
        used = {r[0] for r in con.execute(f"select distinct StageName from read_csv('{renamed / name}', "
                                          "all_varchar=true)").fetchall()}
        assert {"Signed", "Dead"} <= used and not used & set(RENAME), name
        text = (plain / name).read_text()
        for old, new in RENAME.items():
            text = text.replace(f'"{old}"', f'"{new}"')
        assert text == (renamed / name).read_text(), name  # only the names differ
    for p in plain.glob("*.csv"):
        if p.name not in ("Opportunity.csv", "OpportunityHistory.csv", "OpportunityStage.csv"):
            assert _sha(p) == _sha(renamed / p.name) == _sha(bare / p.name), p.name
    assert not (bare / "OpportunityStage.csv").exists()
    with pytest.raises(ValueError, match="not a stage of the sample: Closed Wonn"):
        generate(tmp_path / "x", scale="XS", rename_stages={"Closed Wonn": "Signed"})


# -- the validate step's stage check ---------------------------------------------------------------

HISTORY = [
    {"Id": "008A", "OpportunityId": "006C", "StageName": "Prospecting", "Amount": "2000.00",
     "CloseDate": "2026-12-01", "CreatedDate": "2026-09-01T10:00:00.000Z", "IsDeleted": "false"},
    {"Id": "008B", "OpportunityId": "006C", "StageName": "Verbal Yes", "Amount": "2000.00",
     "CloseDate": "2026-12-01", "CreatedDate": "2026-09-10T10:00:00.000Z", "IsDeleted": "false"},
    {"Id": "008C", "OpportunityId": "006C", "StageName": "Qualification", "Amount": "2000.00",
     "CloseDate": "2026-12-01", "CreatedDate": "2026-09-20T10:00:00.000Z", "IsDeleted": "false"},
    {"Id": "008D", "OpportunityId": "006C", "StageName": "Gone Stage", "Amount": "2000.00",
     "CloseDate": "2026-12-01", "CreatedDate": "2026-09-21T10:00:00.000Z", "IsDeleted": "true"},
]
STAGE_EXPORT = [
    {"Id": "01J1", "MasterLabel": "Verbal Yes", "ApiName": "Verbal_Yes", "IsClosed": "false", "IsWon": "false",
     "DefaultProbability": "60", "SortOrder": "1", "IsActive": "true", "ForecastCategoryName": "Commit"},
]


def _extract(exports: Path, tmp_path: Path, settings: Path | None = None) -> RunContext:
    ctx = RunContext.create(as_of=AS_OF, exports=exports, warehouse=tmp_path / "wh" / "salesos.duckdb",
                            settings_file=settings)
    pipeline.extract(ctx)
    return ctx


def _unknown(ctx: RunContext) -> list[tuple[str, str, int, list[int], bool]]:
    con = duckdb.connect(str(ctx.build_warehouse), read_only=True)
    try:
        return [(u.file, u.stage, u.rows, u.sample_rows, u.conflicting)
                for u in unknown_stages(con, load_settings(ctx.settings_file))]
    finally:
        con.close()


def test_a_history_stage_no_source_knows_stops_validate_naming_stage_file_and_settings(tiny_exports, tmp_path):
    write_csv(tiny_exports / "OpportunityHistory.csv", HISTORY)
    ctx = _extract(tiny_exports, tmp_path)
    # the deleted row's stage is not data; every other stage is in the settings
    assert _unknown(ctx) == [("OpportunityHistory.csv", "Verbal Yes", 1, [2], False)]
    with pytest.raises(UnknownStages) as caught:
        pipeline.validate(ctx)
    message = str(caught.value)
    assert "\n" not in message
    for part in ("OpportunityHistory.csv", "'Verbal Yes'", "data rows 2", "closed_won_stages", "closed_lost_stages",
                 "stage_order", "config/salesos.yml", "OpportunityStage.csv"):
        assert part in message, part
    assert isinstance(caught.value, ValidationFailed)  # the CLI reports it and exits 1, nothing is built
    report = json.loads((ctx.run_dir / "validation.json").read_text())
    assert [(f["file"], f["column"], f["sample_values"]) for f in report["failures"]] == [
        ("OpportunityHistory.csv", "stage_name", ["Verbal Yes"])]


def test_a_run_with_an_unknown_stage_publishes_nothing(tiny_exports, tmp_path, capsys):
    from salesos.cli import main as cli_main

    write_csv(tiny_exports / "OpportunityHistory.csv", HISTORY)
    wh = tmp_path / "cli" / "salesos.duckdb"
    code = cli_main(["run", "--exports", str(tiny_exports), "--warehouse", str(wh), "--as-of", "2026-10-31"])
    err = capsys.readouterr().err
    assert code == 1
    assert "unknown stage(s): OpportunityHistory.csv: stage 'Verbal Yes'" in err
    assert not wh.exists()


@pytest.mark.parametrize("source", ["stage_export", "history_flags", "settings"])
def test_each_source_makes_the_stage_known(source, tiny_exports, tmp_path):
    history = [dict(r) for r in HISTORY]
    settings = None
    if source == "stage_export":
        write_csv(tiny_exports / "OpportunityStage.csv", STAGE_EXPORT)
    elif source == "history_flags":
        history = [r | {"IsClosed": "false", "IsWon": "false"} for r in history]
    else:
        settings = tmp_path / "settings.yml"
        settings.write_text("closed_lost_stages: [Closed Lost, Verbal Yes]\n")
    write_csv(tiny_exports / "OpportunityHistory.csv", history)
    assert _unknown(_extract(tiny_exports, tmp_path, settings)) == []


def test_opportunity_flags_make_a_renamed_current_stage_known_unless_they_disagree(tiny_exports, tmp_path):
    from ..conftest import OPPORTUNITIES

    opps = [dict(r) for r in OPPORTUNITIES]
    opps[0]["StageName"] = "Signed"  # closed and won, by the row's own IsClosed/IsWon
    opps[1]["StageName"] = opps[2]["StageName"] = "Mixed"  # one closed, one open: says nothing
    write_csv(tiny_exports / "Opportunity.csv", opps)
    assert _unknown(_extract(tiny_exports, tmp_path)) == [("Opportunity.csv", "Mixed", 2, [2, 3], True)]


def test_funnel_stage_names_for_the_suites_come_from_the_export_when_it_ranks(tiny_exports, tmp_path):
    ctx = _extract(tiny_exports, tmp_path)
    con = duckdb.connect(str(ctx.build_warehouse), read_only=True)
    try:
        assert ranked_stage_names(con, load_settings()) == load_settings().stage_order
    finally:
        con.close()
    write_csv(tiny_exports / "OpportunityStage.csv", STAGE_EXPORT)
    ctx = _extract(tiny_exports, tmp_path / "again")
    con = duckdb.connect(str(ctx.build_warehouse), read_only=True)
    try:
        assert ranked_stage_names(con, load_settings()) == ["Verbal Yes", "Verbal_Yes", "Closed Won", "Closed Lost"]
    finally:
        con.close()


def test_cli_generate_renames_stages_and_leaves_the_stage_export_out_on_request(tmp_path, capsys, monkeypatch):
    from salesos.cli import main as cli_main
    from salesos.generate import sample_crm

    monkeypatch.setitem(sample_crm.SCALES, "S", sample_crm.SCALES["XS"])  # the wiring is under test, not the size
    out = tmp_path / "cli"
    assert cli_main(["generate", "--out", str(out), "--rename-stage", "Closed Won=Signed", "--no-stage-export"]) == 0
    assert not (out / "OpportunityStage.csv").exists()
    assert '"Signed"' in (out / "Opportunity.csv").read_text() and '"Closed Won"' not in (out / "Opportunity.csv").read_text()
    with pytest.raises(SystemExit):
        cli_main(["generate", "--out", str(out), "--rename-stage", "Closed Won"])
    assert "--rename-stage takes OLD=NEW" in capsys.readouterr().err


def test_a_stage_row_without_its_flags_goes_to_quarantine_naming_file_row_and_field(tiny_exports, tmp_path):
    rows = [*STAGE_EXPORT, STAGE_EXPORT[0] | {"Id": "01J2", "MasterLabel": "Half Known", "ApiName": "", "IsClosed": ""}]
    write_csv(tiny_exports / "OpportunityStage.csv", rows)
    ctx = _extract(tiny_exports, tmp_path)
    con = duckdb.connect(str(ctx.build_warehouse), read_only=True)
    try:
        loaded = con.execute("select master_label from raw.opportunity_stages").fetchall()
        quarantined = con.execute("select * from quarantine.opportunity_stages").df()
    finally:
        con.close()
    assert loaded == [("Verbal Yes",)]
    assert len(quarantined) == 1
    row = quarantined.iloc[0].to_dict()
    assert (row["_reason"], row["_field"], row["_row_number"]) == ("missing_value", "is_closed", 2), row
    assert row["_source_file"] == "OpportunityStage.csv", row


def test_two_stages_with_one_label_stop_validate_naming_the_field(tiny_exports, tmp_path):
    write_csv(tiny_exports / "OpportunityStage.csv", [*STAGE_EXPORT, STAGE_EXPORT[0] | {"Id": "01J2", "IsClosed": "true"}])
    ctx = _extract(tiny_exports, tmp_path)
    with pytest.raises(ValidationFailed) as caught:
        pipeline.validate(ctx)
    assert "OpportunityStage.csv: field 'master_label' fails expect_compound_columns_to_be_unique" in str(caught.value)
    assert not isinstance(caught.value, UnknownStages)
