"""Issue 22 case 2: numbers parse by one explicit rule per file, never by guessing each value.

On the code before this suite, `1234,50` and `1 234,50` loaded as 123450 and `1.234` as 1.234 in a file
whose other numbers said nothing either way; every test here failed there.
"""

from datetime import UTC, datetime
from decimal import Decimal

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesos.extract.landing import archive_exports
from salesos.extract.load import load_raw
from salesos.settings import Settings, SettingsError, load_settings

from ..conftest import OPPORTUNITIES, write_csv

NOW = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


def _load(exports, tmp_path, run_id="r1", con=None, **settings):
    archive = tmp_path / "archive" / run_id
    files = archive_exports(exports, archive)
    con = con or duckdb.connect(str(tmp_path / "wh.duckdb"))
    return con, load_raw(con, archive, files, run_id, NOW, settings=Settings(**settings))


def _amounts(tiny_exports, amounts, probability=None):
    rows = [dict(OPPORTUNITIES[0], Id=f"006{i:03d}", Amount=a) for i, a in enumerate(amounts, start=1)]
    if probability is not None:
        rows = [dict(r, Probability=probability) for r in rows]
    write_csv(tiny_exports / "Opportunity.csv", rows)


def _loaded(con):
    return con.execute("select id, amount from raw.opportunities order by _row_number").fetchall()


def _quarantined(con):
    return con.execute(
        "select _row_number, _reason, _field, _value from quarantine.opportunities order by 1"
    ).fetchall()


def test_decimal_comma_file_is_read_with_decimal_comma_not_inflated(tiny_exports, tmp_path):
    _amounts(tiny_exports, ["1234,50", "1 234,50", "1.234,50", "1\u00a0234,5", "1500", "0,25"])
    con, res = _load(tiny_exports, tmp_path)
    assert _loaded(con) == [
        ("006001", "1234.500000"),
        ("006002", "1234.500000"),
        ("006003", "1234.500000"),
        ("006004", "1234.500000"),
        ("006005", "1500.000000"),
        ("006006", "0.250000"),
    ]
    assert res.quarantined["Opportunity.csv"] == 0
    assert res.number_formats["Opportunity.csv"].startswith("decimal ',', thousands '.'")
    # the decision is recorded per file where a human looks
    got = con.execute("select number_format from raw._loads where table_name = 'opportunities'").fetchall()
    assert got == [(res.number_formats["Opportunity.csv"],)]


def test_decimal_comma_file_reads_1_234_as_a_thousand_and_dot_file_as_a_decimal(tiny_exports, tmp_path):
    _amounts(tiny_exports, ["1.234", "99,90"])  # 99,90 says comma: 1.234 is then 1234
    con, _ = _load(tiny_exports, tmp_path)
    assert _loaded(con) == [("006001", "1234.000000"), ("006002", "99.900000")]
    _amounts(tiny_exports, ["1.234", "99.90", "1,234"])  # 99.90 says dot
    con, _ = _load(tiny_exports, tmp_path, run_id="r2", con=con)
    assert _loaded(con) == [("006001", "1.234000"), ("006002", "99.900000"), ("006003", "1234.000000")]


def test_a_file_mixing_conventions_quarantines_what_the_rule_cannot_settle(tiny_exports, tmp_path):
    # dot wins (3 to 1); 1234,50 is the other convention, 1.234 could be either: both quarantined
    _amounts(tiny_exports, ["1000.50", "2,500.00", "1234,50", "1.234", "750.25", "300"])
    con, res = _load(tiny_exports, tmp_path)
    assert _loaded(con) == [
        ("006001", "1000.500000"),
        ("006002", "2500.000000"),
        ("006005", "750.250000"),
        ("006006", "300.000000"),
    ]
    assert _quarantined(con) == [(3, "ambiguous_number", "amount", "1234,50"), (4, "ambiguous_number", "amount", "1.234")]
    assert res.by_rule["Opportunity.csv:ambiguous_number"] == 2
    assert "mixed in the file" in res.number_formats["Opportunity.csv"]
    assert res.read["Opportunity.csv"] == res.loaded["Opportunity.csv"] + res.quarantined["Opportunity.csv"] == 6


def test_without_evidence_an_ambiguous_value_is_quarantined_not_guessed(tiny_exports, tmp_path):
    _amounts(tiny_exports, ["1.234", "500", "12,500"], probability="10")
    con, res = _load(tiny_exports, tmp_path)
    assert _loaded(con) == [("006002", "500.000000")]
    assert _quarantined(con) == [(1, "ambiguous_number", "amount", "1.234"), (3, "ambiguous_number", "amount", "12,500")]
    assert "no value in the file says which" in res.number_formats["Opportunity.csv"]


def test_evidence_comes_from_every_number_column_of_the_file(tiny_exports, tmp_path):
    _amounts(tiny_exports, ["1.234", "500"], probability="12,5")  # the probability column says comma
    con, _ = _load(tiny_exports, tmp_path)
    assert _loaded(con) == [("006001", "1234.000000"), ("006002", "500.000000")]
    assert con.execute("select distinct probability from raw.opportunities").fetchall() == [("12.500000",)]


def test_the_settings_fix_the_rule(tiny_exports, tmp_path):
    _amounts(tiny_exports, ["1.234", "500", "1234,50"], probability="10")
    con, res = _load(tiny_exports, tmp_path, number_decimal_separator=",")
    assert _loaded(con) == [("006001", "1234.000000"), ("006002", "500.000000"), ("006003", "1234.500000")]
    assert "set in settings" in res.number_formats["Opportunity.csv"]
    con, _ = _load(tiny_exports, tmp_path, run_id="r2", con=con, number_decimal_separator=".")
    assert _loaded(con) == [("006001", "1.234000"), ("006002", "500.000000")]
    assert _quarantined(con) == [(3, "ambiguous_number", "amount", "1234,50")]
    _amounts(tiny_exports, ["1 234.5", "1,234.5"], probability="10")
    con, _ = _load(tiny_exports, tmp_path, run_id="r3", con=con, number_decimal_separator=".",
                   number_thousands_separator=" ")
    assert _loaded(con) == [("006001", "1234.500000")]
    assert _quarantined(con) == [(2, "unparseable_number", "amount", "1,234.5")]


@pytest.mark.parametrize(
    ("key", "value"),
    [("number_decimal_separator", ";"), ("number_thousands_separator", "_"), ("export_encoding", "ebcdic")],
)
def test_a_bad_format_setting_names_the_key(tmp_path, key, value):
    path = tmp_path / "s.yml"
    path.write_text(f"{key}: {value!r}\n")
    with pytest.raises(SettingsError, match=key):
        load_settings(path)
    (tmp_path / "t.yml").write_text("number_decimal_separator: ','\nnumber_thousands_separator: ','\n")
    with pytest.raises(SettingsError, match="both"):
        load_settings(tmp_path / "t.yml")


def test_a_changed_number_rule_reloads_the_table_in_full(tiny_exports, tmp_path):
    _amounts(tiny_exports, ["1.234", "10.50"])  # dot: 1.234
    con, _ = _load(tiny_exports, tmp_path)
    _amounts(tiny_exports, ["1.234", "10,50"])  # the same first row, now in a comma file: 1234
    con, res = _load(tiny_exports, tmp_path, run_id="r2", con=con)
    assert res.mode["Opportunity.csv"] == "full"  # the kept row was parsed by the other rule
    assert _loaded(con) == [("006001", "1234.000000"), ("006002", "10.500000")]
    con, res = _load(tiny_exports, tmp_path, run_id="r3", con=con)
    assert res.mode["Opportunity.csv"] == "incremental"


def _render(value: Decimal, decimal: str, group: str) -> str:
    sign = "-" if value < 0 else ""
    whole, frac = f"{abs(value):.2f}".split(".")
    if group:
        parts = []
        while len(whole) > 3:
            whole, parts = whole[:-3], [whole[-3:], *parts]
        whole = group.join([whole, *parts])
    return f"{sign}{whole}{decimal}{frac}"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(st.decimals(min_value=0, max_value=10**12, places=2, allow_nan=False), min_size=1, max_size=30),
    style=st.sampled_from([(".", ""), (".", ","), (".", " "), (",", ""), (",", "."), (",", " "), (",", "\u00a0")]),
)
def test_any_amount_in_any_one_convention_loads_exactly(tiny_exports, tmp_path_factory, values, style):
    decimal, group = style
    tmp = tmp_path_factory.mktemp("numbers")
    rendered = [_render(v, decimal, group) for v in values]
    _amounts(tiny_exports, rendered)
    con, res = _load(tiny_exports, tmp)
    assert res.quarantined["Opportunity.csv"] == 0, _quarantined(con)
    got = [Decimal(a) for _, a in _loaded(con)]
    assert got == values  # exact: never through a float, never rescaled


def test_after_an_upgrade_only_tables_with_numbers_reload_once(tiny_exports, tmp_path):
    con, _ = _load(tiny_exports, tmp_path)
    con.execute("update raw._loads set number_format = null")  # as loads before this rule recorded none
    con, res = _load(tiny_exports, tmp_path, run_id="r2", con=con)
    assert res.mode["Opportunity.csv"] == "full"  # parsed by the old rule: reloaded once
    assert res.mode["User.csv"] == "incremental"  # no numbers: nothing to parse again
    con, res = _load(tiny_exports, tmp_path, run_id="r3", con=con)
    assert res.mode["Opportunity.csv"] == "incremental"


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.text(alphabet="0123456789.,- +", min_size=1, max_size=12), min_size=1, max_size=40))
def test_the_evidence_shortcut_counts_what_the_rules_say(values):
    """The cheap test for 45000.00 in decide_number_format agrees with the two rules' regexes on any text."""
    import re

    from salesos.extract.load import _COMMA_RULE, _DOT_RULE, decide_number_format

    def says(v: str, rule: str, other: str) -> bool:
        v = v.strip(" ")
        return bool(v) and ("." in v or "," in v) and bool(re.fullmatch(rule, v)) and not re.fullmatch(other, v)

    con = duckdb.connect()
    con.execute("create table t (a varchar)")
    con.executemany("insert into t values (?)", [[v] for v in values])
    fmt = decide_number_format(con, "t", ['"a"'])
    n_dot = sum(says(v, _DOT_RULE, _COMMA_RULE) for v in values)
    n_comma = sum(says(v, _COMMA_RULE, _DOT_RULE) for v in values)
    expected = "," if n_comma > n_dot else "."
    assert fmt.decimal == expected
    assert fmt.settled == (bool(n_dot) != bool(n_comma))
