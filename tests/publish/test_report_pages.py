"""The report's building blocks on small hand-made inputs: amounts, page names, the data quality page."""

from datetime import date

import duckdb
import pytest

from salesos.publish.report.build import table_html
from salesos.publish.report.money import Money, pct
from salesos.publish.report.pages import Builder, ReportContext, file_name


def test_amounts_are_written_in_the_reporting_currency():
    assert Money("USD").full(1234567.4) == "$1,234,567"
    assert Money("EUR").short(1_234_000) == "€1.23M"
    assert Money("SEK").full(-950) == "-950 kr"
    assert Money("XYZ").short(12_500) == "XYZ 12.5k"
    assert Money("GBP").full(None) == "–" and Money("GBP").full(float("nan")) == "–"
    assert Money("EUR").vega_locale()["currency"] == ["€", ""]
    assert pct(0.953) == "95%" and pct(None) == "–"


def test_page_names_are_safe_file_names_and_distinct():
    assert file_name("0058d00000000GLAAY") == "0058d00000000GLAAY"
    odd = [file_name(k) for k in ("a/b", "a b", "../x", "ü", "")]
    assert all("/" not in n and not n.startswith(".") for n in odd)
    assert len(set(odd)) == len(odd)


def test_a_table_escapes_what_it_shows():
    html = table_html({"columns": [{"label": "Deal", "numeric": False}],
                       "rows": [[{"text": "<script>x</script>", "sort": None, "href": "reps/a.html?x=\"1\""}]]})
    assert "<script>x" not in html and "&lt;script&gt;" in html and 'href="reps/a.html?x=&#34;1&#34;"' in html


@pytest.fixture
def quarantine_warehouse(tmp_path):
    """Only what the data quality page reads: the load audit and two quarantine tables."""
    path = tmp_path / "q.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema raw; create schema quarantine")
    con.execute("create table raw._loads (run_id varchar, table_name varchar, source_file varchar, row_count bigint, "
                "quarantined bigint, load_mode varchar, inserted bigint, updated bigint, deleted bigint, "
                "encoding varchar)")
    con.execute("insert into raw._loads values ('r1', 'opportunities', 'Opportunity.csv', 10, 2, 'full', 8, 0, 0, "
                "'utf-8'), ('r0', 'opportunities', 'Opportunity.csv', 9, 0, 'full', 9, 0, 0, 'utf-8')")
    for table in ("opportunities", "users"):
        con.execute(f"create table quarantine.{table} (Id varchar, _reason varchar, _field varchar, _value varchar, "
                    "_source_file varchar, _row_number bigint)")
    con.execute("insert into quarantine.opportunities values ('006X', 'negative_amount', 'Amount', '-5', "
                "'Opportunity.csv', 7), ('006Y', 'unparseable_date', 'CloseDate', '31/02/2026', 'Opportunity.csv', 3)")
    con.close()
    return path


def test_the_data_quality_page_lists_this_runs_loads_and_every_quarantined_row(quarantine_warehouse):
    ctx = ReportContext(as_of=date(2026, 10, 31), run_id="r1", version=None, currency="USD", warehouse="w",
                        stale_days=30, pushed_times=2, warnings=("Opportunity.csv is 3 days old",),
                        build={"tests_passed": 5, "tests_warned": 1})
    con = duckdb.connect(str(quarantine_warehouse), read_only=True)
    try:
        page = Builder(con, ctx).quality("file:///docs/index.html")
    finally:
        con.close()
    blocks = {b.get("title"): b for s in page.sections for b in s["blocks"]}
    loads = blocks["This run's load, per export file"]["rows"]
    assert len(loads) == 1 and [c["text"] for c in loads[0][:4]] == ["Opportunity.csv", "full", "10", "2"]
    by_rule = [[c["text"] for c in r] for r in blocks["By file, rule and field"]["rows"]]
    assert sorted(by_rule) == [["Opportunity.csv", "negative_amount", "Amount", "1"],
                               ["Opportunity.csv", "unparseable_date", "CloseDate", "1"]]
    rows = [[c["text"] for c in r] for r in blocks["The rows (first 200)"]["rows"]]
    assert rows[0] == ["Opportunity.csv", "3", "unparseable_date", "CloseDate", "31/02/2026"]
    warnings = next(s for s in page.sections if s["title"] == "Warnings and Data Docs")["blocks"]
    assert warnings[0]["rows"][0][0]["text"] == "Opportunity.csv is 3 days old"
    assert warnings[1]["links"][0]["href"] == "file:///docs/index.html"


def test_a_rep_who_moved_this_quarter_counts_in_each_team_for_the_months_there():
    """Team pages credit a rep as the marts do: quotas and bookings in the team of their own dates."""
    start = date(2026, 8, 1)
    cards = [{"owner_id": o, "owner_name": n, "team_id": t, "fiscal_month": m, "quota_amount": q, "call_count": 1,
              "meeting_count": 2}
             for o, n, t, m, q in [("r1", "Ann", "A", "2026-05-01", 50), ("r1", "Ann", "A", "2026-08-01", 100),
                                   ("r1", "Ann", "B", "2026-09-01", 100), ("r1", "Ann", "B", "2026-10-01", 100),
                                   ("r2", "Bo", "A", "2026-08-01", 70), ("r2", "Bo", "A", "2026-09-01", 70)]]
    wins = [{"owner_id": "r1", "team_id": "A", "won_amount": 40, "won_count": 1, "lost_count": 1},
            {"owner_id": "r1", "team_id": "B", "won_amount": 90, "won_count": 2, "lost_count": 0},
            {"owner_id": "r2", "team_id": "A", "won_amount": 10, "won_count": 1, "lost_count": 3}]
    latest = [{"owner_id": "r1", "team_id": "B"}, {"owner_id": "r2", "team_id": "A"},
              {"owner_id": "r3", "team_id": "C"}]  # r3: nothing this quarter, listed under its latest team
    stints = Builder.team_stints(latest, cards, wins, start)
    assert set(stints) == {("r1", "A"), ("r1", "B"), ("r2", "A"), ("r3", "C")}
    assert stints["r2", "A"] == "whole" and stints["r3", "C"] == "whole"
    old, new = stints["r1", "A"], stints["r1", "B"]
    assert (old["quota_amount"], old["won_amount"], old["months"], old["is_current"]) == (100, 40, ["2026-08-01"], False)
    assert (new["quota_amount"], new["won_amount"], new["won_count"], new["is_current"]) == (200, 90, 2, True)
    assert new["call_count"] == 2 and new["months"] == ["2026-09-01", "2026-10-01"]


@pytest.mark.e2e
def test_each_team_pages_reps_add_up_to_the_teams_quarter_in_the_marts(xs_night):
    """The sample moves a rep mid-quarter: the old team's page shows the months before the move, the new team's
    the months after, and every team page's quotas and bookings add up to mart_quota_attainment's team quarter."""
    ctx = ReportContext(as_of=date(2026, 10, 31), run_id="r", version=None, currency="USD", warehouse="w",
                        stale_days=30, pushed_times=2, warnings=(), build={})
    con = duckdb.connect(str(xs_night), read_only=True)
    try:
        builder = Builder(con, ctx)
        pages = [p for p in builder.reps_and_teams() if p.path.startswith("teams/")]
        quarter = {r["level_id"]: r for r in builder.current(builder.team, "quarter")}
    finally:
        con.close()
    assert len(pages) == len(quarter) >= 2
    moved = []
    for page in pages:
        team = quarter[page.path.removeprefix("teams/").removesuffix(".html")]
        rows = next(b for s in page.sections for b in s["blocks"] if b.get("kind") == "table")["rows"]
        for column, label in ((2, "quota_amount"), (3, "booked_amount")):
            shown = sum(r[column]["sort"] or 0.0 for r in rows)
            assert shown == pytest.approx(float(team[label] or 0), rel=1e-9, abs=1e-6), (page.title, label)
        moved += [r[0]["text"] for r in rows if "(moved" in r[0]["text"]]
    assert any("moved out" in m for m in moved) and any("moved in" in m for m in moved), moved
