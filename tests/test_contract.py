from pathlib import Path

import pytest

from salesos.contract import EXPORTS, OPPORTUNITY, QUOTAS, export_by_filename, map_headers, snake_case

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("StageName", "stage_name"),
        ("stage_name", "stage_name"),
        ("CurrencyIsoCode", "currency_iso_code"),
        ("Region__c", "region__c"),
        ("Deal_Score__c", "deal_score__c"),
        ("\ufeffId", "id"),
        ("Stage Name", "stage_name"),
    ],
)
def test_snake_case(name, expected):
    assert snake_case(name) == expected


def test_headers_match_case_insensitively_and_in_snake_case():
    mapping = map_headers(OPPORTUNITY, ["ID", "stage_name", "STAGENAME2", "Amount", "Competitor__c"])
    assert mapping == {
        "ID": "id",
        "stage_name": "stage_name",
        "STAGENAME2": "stagename2",
        "Amount": "amount",
        "Competitor__c": "competitor__c",
    }


def test_two_headers_for_one_field_is_an_error_naming_the_file():
    with pytest.raises(ValueError, match=r"Opportunity.csv.*'StageName'.*'stage_name'"):
        map_headers(OPPORTUNITY, ["StageName", "stage_name"])


def test_every_export_has_unique_columns_and_a_table():
    tables = [e.table for e in EXPORTS]
    assert len(tables) == len(set(tables))
    for e in EXPORTS:
        assert len(e.columns) == len(set(e.columns)), e.filename


def test_files_match_by_name_case_insensitively():
    assert export_by_filename("opportunity.CSV") is OPPORTUNITY
    assert export_by_filename("QUOTAS.csv") is QUOTAS
    assert export_by_filename("Campaign.csv") is None


def test_the_dbt_sources_staging_models_and_contract_page_table_are_the_files_generated_from_the_contract():
    """Edit salesos/contract.py, then `python -m salesos.contract --write-dbt-sources`; never a generated file by hand."""
    from salesos.contract import CONTRACT_PAGE, generated_files

    files = generated_files()
    assert ROOT / CONTRACT_PAGE in files and len([p for p in files if p.suffix == ".sql"]) == len(EXPORTS)
    stale = [str(p) for p, text in files.items() if p.read_text(encoding="utf-8") != text]
    assert stale == [], "out of date: run python -m salesos.contract --write-dbt-sources"


def test_the_contract_page_table_is_generated_between_its_markers_only(tmp_path):
    """The generator rewrites the "Fields used" table and nothing else of the page; a page without the markers is
    an error that names the page, not a silently unchanged table."""
    from salesos import contract

    page = (ROOT / contract.CONTRACT_PAGE).read_text(encoding="utf-8")
    begin, end = page.index(contract.FIELDS_BEGIN), page.index(contract.FIELDS_END) + len(contract.FIELDS_END)
    edited = page[:begin] + contract.FIELDS_BEGIN + "\n| `Opportunity.csv` | Id |\n" + contract.FIELDS_END + page[end:]
    assert contract.contract_page(edited) == page
    assert contract.contract_page("intro\n" + page[begin:end] + "\nrest\n") == \
        "intro\n" + contract.fields_used_table() + "rest\n"
    with pytest.raises(ValueError, match=r"export-contract\.md: the markers"):
        contract.contract_page(page.replace(contract.FIELDS_END, ""))


def test_every_contract_column_is_a_source_column_with_the_contracts_description():
    """Read back as dbt reads it: each export a table of its source, each field a column, in order, described."""
    import yaml

    from salesos.contract import EXPORTS, LOAD_COLUMN_DESCRIPTIONS, dbt_source_files

    tables = {}
    for path in (p for p in dbt_source_files() if p.suffix == ".yml"):
        for source in yaml.safe_load(path.read_text(encoding="utf-8"))["sources"]:
            tables |= {(source["name"], t["name"]): t for t in source["tables"]}
    assert set(tables) == {(e.source, e.table) for e in EXPORTS}
    for e in EXPORTS:
        columns = tables[(e.source, e.table)]["columns"]
        assert [c["name"] for c in columns] == [*e.columns, *LOAD_COLUMN_DESCRIPTIONS, "_row_hash"]
        for f, c in zip(e.fields, columns, strict=False):
            assert c["description"].startswith(f.description) and f"Export field {f.api_name} (" in c["description"]
        assert (tables[(e.source, e.table)].get("config") == {"freshness": None}) is not e.required


def test_a_new_contract_field_flows_to_the_generated_sources(monkeypatch, tmp_path, capsys):
    import dataclasses

    from salesos import contract

    deal_score = contract.F("Deal_Score__c", "number", description="Score of the deal, 0-10.")
    changed = dataclasses.replace(contract.OPPORTUNITY, fields=(*contract.OPPORTUNITY.fields, deal_score))
    monkeypatch.setattr(contract, "EXPORTS", (changed, *contract.EXPORTS[1:]))
    text = contract.dbt_source_yaml("crm")
    assert ("          - name: deal_score__c\n"
            '            description: "Score of the deal, 0-10. Export field Deal_Score__c (number)."\n') in text
    assert contract.main(["--check-dbt-sources"]) == 1  # the committed file does not have it yet
    assert "out of date" in capsys.readouterr().err


def test_a_new_contract_field_flows_to_the_contract_page(monkeypatch, capsys):
    """The "Fields used" row of its export names it (bold when required), with no hand edit of the page."""
    import dataclasses

    from salesos import contract

    deal_score = contract.F("Deal_Score__c", "number", True, description="Score of the deal, 0-10.", note="0-10")
    changed = dataclasses.replace(contract.OPPORTUNITY, fields=(*contract.OPPORTUNITY.fields, deal_score))
    monkeypatch.setattr(contract, "EXPORTS", (changed, *contract.EXPORTS[1:]))
    row = next(line for line in contract.fields_used_table().splitlines() if line.startswith("| `Opportunity.csv`"))
    assert row.endswith(", **Deal_Score__c** (0-10) |")
    assert contract.main(["--check-dbt-sources"]) == 1
    assert "export-contract.md: out of date" in capsys.readouterr().err


def test_a_new_contract_field_flows_to_its_staging_model(monkeypatch, capsys):
    """One F(...) line: the staging model selects it, cast by its type, with no hand edit of the model."""
    import dataclasses

    from salesos import contract

    deal_score = contract.F("Deal_Score__c", "number", description="Score of the deal, 0-10.")
    changed = dataclasses.replace(contract.OPPORTUNITY, fields=(*contract.OPPORTUNITY.fields, deal_score))
    monkeypatch.setattr(contract, "EXPORTS", (changed, *contract.EXPORTS[1:]))
    assert '                staging: {as: "deal_score__c", cast: "to_number"}\n' in contract.dbt_source_yaml("crm")
    assert "--   to_number(deal_score__c)" in contract.dbt_staging_sql(changed)
    assert contract.main(["--check-dbt-sources"]) == 1
    assert "stg_crm__opportunities.sql: out of date" in capsys.readouterr().err


def test_a_hand_edited_staging_model_is_out_of_date(tmp_path, capsys):
    """The check compares every generated file, the staging models included, byte for byte."""
    from salesos import contract

    files = contract.dbt_source_files(tmp_path)
    model = next(p for p in files if p.name == "stg_crm__accounts.sql")
    assert "select {{ stage_columns('crm', 'accounts') }}\nfrom source\n" in files[model]
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("as account_type", "as type") if path == model else text, encoding="utf-8")
    stale = [p for p, text in files.items() if p.read_text(encoding="utf-8") != text]
    assert stale == [model]


def test_every_staging_cast_is_one_the_macro_knows():
    """The staging meta names casting macros; stage_columns (macros/staging.sql) must dispatch each of them."""
    import re

    from salesos.contract import EXPORTS, STAGING_CASTS, staging_meta

    macro = (ROOT / "dbt_project" / "macros" / "staging.sql").read_text(encoding="utf-8")
    known = set(re.findall(r"'(\w+)': salesos\.\1\b", macro))
    used = {m["cast"] for e in EXPORTS for f in e.fields if (m := staging_meta(f)) is not None}
    assert set(STAGING_CASTS.values()) <= known and used <= known, sorted((used | set(STAGING_CASTS.values())) - known)


def test_the_staging_models_document_only_columns_they_select():
    """A field renamed in the contract must not leave its old name documented (and tested) in staging's yml."""
    import yaml

    from salesos.contract import EXPORTS

    documented = {}
    for path in (ROOT / "dbt_project" / "models" / "staging").glob("*/_*__models.yml"):
        documented |= {m["name"]: [c["name"] for c in m.get("columns", [])]
                       for m in yaml.safe_load(path.read_text(encoding="utf-8"))["models"]}
    for e in EXPORTS:
        selected = [f.staged_as for f in e.fields if f.stage is not None] + list(e.staging_load_columns)
        assert set(documented[e.staging_model]) <= set(selected), (e.staging_model, documented[e.staging_model])
