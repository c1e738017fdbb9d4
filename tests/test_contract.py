import pytest

from salesos.contract import EXPORTS, OPPORTUNITY, QUOTAS, export_by_filename, map_headers, snake_case


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
    assert export_by_filename("Contact.csv") is None
