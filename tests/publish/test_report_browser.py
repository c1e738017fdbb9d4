"""The nightly report of the XS sample night, opened page by page in headless Chromium (issue 19).

Every page is reached from index.html by its links; the test fails on a console error, an uncaught exception,
a file that does not load, a request off the machine, a chart that drew nothing, a broken link or anchor, or
a page the manifest or the warehouse says should exist and that no link reaches. A screenshot of each page
is kept in test-artefacts/report/ (the path is printed at the end of the run).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import duckdb
import pytest

from salesos.cli import main as cli_main
from salesos.publish.report import report_path
from salesos.publish.report.money import Money
from salesos.publish.report.pages import file_name
from salesos.publish.versions import list_versions
from tests.conftest import ARTEFACTS
from tests.publish.cdp import Browser

pytestmark = pytest.mark.e2e

READY = "window.salesosReportReady === true"
# What a page shows, measured in the browser: each chart's drawn size and marks of nonzero size, its links.
PAGE_FACTS = """(() => {
  const charts = Array.from(document.querySelectorAll('.chart')).map(el => {
    const svg = el.querySelector('svg');
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    const marks = Array.from(el.querySelectorAll('g.role-mark > *')).filter(m => {
      const b = m.getBBox ? m.getBBox() : {width: 0, height: 0};
      return b.width > 0 || b.height > 0;
    }).length;
    return {id: el.id, title: el.getAttribute('aria-label'), width: box.width, height: box.height, marks: marks};
  });
  const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.href);
  const ids = Array.from(document.querySelectorAll('[id]')).map(e => e.id);
  return {charts: charts, links: links, ids: ids, title: document.title, h1: document.querySelector('h1').textContent};
})()"""


@pytest.fixture(scope="module")
def report(xs_night: Path) -> Path:
    """The run's own report folder, as the nightly run wrote it."""
    folder = xs_night.parent / "runs" / "asof_2026-10-31" / "report"
    assert (folder / "index.html").is_file(), f"the nightly run wrote no report into {folder}"
    return folder


@pytest.fixture(scope="module")
def crawl(report: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Open every page reachable from index.html; keep a screenshot of each; return what each showed."""
    shots = ARTEFACTS / "report"
    shutil.rmtree(shots, ignore_errors=True)
    pages: dict[str, dict] = {}
    todo = ["index.html"]
    anchors: list[tuple[str, str, str]] = []  # (from page, to page, fragment)
    with Browser(tmp_path_factory.mktemp("chromium")) as browser:
        while todo:
            rel = todo.pop(0)
            if rel in pages:
                continue
            load = browser.open((report / rel).as_uri(), READY)
            facts = browser.evaluate(PAGE_FACTS)
            facts["problems"] = load.problems()
            facts["screenshot"] = str(browser.screenshot(shots / (rel.replace("/", "__") + ".png")))
            facts["broken"] = []
            for href in facts["links"]:
                url = urlparse(href)
                if url.scheme != "file":
                    facts["broken"].append(f"{href}: not a file on disk (the report must open offline)")
                    continue
                target = Path(unquote(url.path))
                if not target.is_file():
                    facts["broken"].append(f"{href}: no such file")
                    continue
                if target.is_relative_to(report) and target.suffix == ".html":
                    to = target.relative_to(report).as_posix()
                    todo.append(to)
                    if url.fragment:
                        anchors.append((rel, to, url.fragment))
            pages[rel] = facts
    print(f"report screenshots: {shots}")
    for source, to, fragment in anchors:
        if fragment not in pages[to]["ids"]:
            pages[source]["broken"].append(f"{to}#{fragment}: no element with that id")
    return pages


def test_every_page_opens_without_errors_and_draws_every_chart(crawl):
    problems = {page: facts["problems"] + facts["broken"] for page, facts in crawl.items()
                if facts["problems"] or facts["broken"]}
    assert not problems, json.dumps(problems, indent=1)
    blank = {page: [c for c in facts["charts"] if c["width"] < 100 or c["height"] < 50 or c["marks"] == 0]
             for page, facts in crawl.items()}
    assert not any(blank.values()), json.dumps({p: b for p, b in blank.items() if b}, indent=1)
    assert sum(len(f["charts"]) for f in crawl.values()) >= 20
    for page, facts in crawl.items():
        assert Path(facts["screenshot"]).stat().st_size > 10_000, f"{page}: screenshot looks empty"


def test_every_page_is_reached_and_every_team_and_rep_has_one(crawl, report, xs_night):
    manifest = json.loads((report / "manifest.json").read_text(encoding="utf-8"))
    assert set(crawl) == set(manifest["pages"]), "pages no link reaches, or links to pages not in the manifest"
    con = duckdb.connect(str(xs_night), read_only=True)
    try:
        teams = [r[0] for r in con.execute("select distinct level_id from marts.mart_quota_attainment "
                                           "where level = 'team'").fetchall()]
        reps = [r[0] for r in con.execute("select distinct owner_id from marts.mart_rep_scorecard").fetchall()]
    finally:
        con.close()
    assert teams and reps
    expected = {"index.html", "pipeline.html", "teams.html", "reps.html", "accuracy.html", "quality.html",
                *(f"teams/{file_name(t)}.html" for t in teams), *(f"reps/{file_name(r)}.html" for r in reps)}
    assert expected == set(crawl)


def test_the_numbers_shown_are_the_marts(crawl, report, xs_night):
    """The overview's quarter tile and the waterfall's ends are the marts' numbers, in the reporting currency."""
    con = duckdb.connect(str(xs_night), read_only=True)
    try:
        booked, opened = con.execute(
            "select booked_amount, (select sum(open_amount) from marts.mart_pipeline where snapshot_date = "
            "date '2026-10-31') from marts.mart_quota_attainment where level = 'company' and "
            "period_type = 'quarter' and period_start <= date '2026-10-31' and period_end >= date '2026-10-31'"
        ).fetchone()
    finally:
        con.close()
    booked, opened = float(booked), float(opened)  # DECIMAL columns
    money = Money("USD")
    index = (report / "index.html").read_text(encoding="utf-8")
    assert f'<div class="label">Quarter: booked</div><div class="value">{money.short(booked)}</div>' in index
    specs = json.loads((report / "pipeline.html").read_text(encoding="utf-8")
                       .split('<script type="application/json" id="salesos-charts">', 1)[1].split("</script>", 1)[0])
    steps = next(s for s in specs.values() if any(v.get("step", "").startswith("Open on") for v in s["data"]["values"]))
    values = sorted(steps["data"]["values"], key=lambda v: v["order"])
    assert values[-1]["end"] == pytest.approx(opened)
    # the flows carry the quarter's opening pipeline to tonight's: each bar starts where the last ended
    assert values[-2]["end"] == pytest.approx(opened, rel=1e-6)


def test_tables_sort_in_the_browser(report, tmp_path):
    with Browser(tmp_path / "chromium") as browser:
        browser.open((report / "reps.html").as_uri(), READY)
        col = browser.evaluate("Array.from(document.querySelectorAll('#reps thead th')).findIndex("
                               "th => th.textContent.trim() === 'Attainment')")
        assert col >= 0
        browser.evaluate(f"document.querySelectorAll('#reps thead th')[{col}].querySelector('button').click()")
        keys = browser.evaluate(f"Array.from(document.querySelectorAll('#reps tbody tr')).map("
                                f"r => r.cells[{col}].getAttribute('data-sort'))")
        numbers = [float(k) for k in keys if k != ""]
        assert numbers == sorted(numbers) and keys[len(numbers):] == [""] * (len(keys) - len(numbers))
        assert browser.evaluate(f"document.querySelectorAll('#reps thead th')[{col}].getAttribute('aria-sort')") \
            == "ascending"


def _tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_latest_report_beside_the_warehouse_is_the_runs(report, xs_night):
    latest = report_path(xs_night)
    assert latest.is_symlink() and (latest / "index.html").is_file()
    assert _tree(latest.resolve()) == _tree(report)


def test_salesos_report_rebuilds_a_kept_version_read_only(report, xs_night, tmp_path, capsys):
    before = (_tree(xs_night.parent / "versions"), hashlib.sha256(xs_night.read_bytes()).hexdigest())
    version = list_versions(xs_night, xs_night.parent)[-1]
    out = tmp_path / "again"
    assert cli_main(["report", "--warehouse", str(xs_night), "--version", "1", "--out", str(out)]) == 0
    assert f"open {out / 'index.html'}" in capsys.readouterr().out
    rebuilt, nightly = _tree(out), _tree(report)
    assert set(rebuilt) == set(nightly)
    # the same pages; the header names the version (the nightly run writes its report before it has one)
    differing = [p for p in rebuilt if rebuilt[p] != nightly[p]]
    assert differing and all(p.endswith(".html") or p == "manifest.json" for p in differing)
    assert f"version {version.version_id}" in (out / "index.html").read_text(encoding="utf-8")
    assert (_tree(xs_night.parent / "versions"), hashlib.sha256(xs_night.read_bytes()).hexdigest()) == before
    assert cli_main(["report", "--warehouse", str(xs_night), "--version", "9"]) == 1
    assert "matches 0 kept versions" in capsys.readouterr().err
