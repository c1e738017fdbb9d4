"""Data Docs for a run: written for passing and failing suites, and nothing in them is loaded from the network."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from salesos.validate.data_docs import (
    CDN_ASSETS,
    VENDOR_DIR,
    OfflineAssetError,
    build_data_docs,
    make_offline,
    offline_violations,
)
from salesos.validate.frames import gx_context

GX_TEMPLATES = Path(__import__("great_expectations").__file__).parent / "render" / "view" / "templates"


def _validate(context, name, df):
    import great_expectations as gx

    source = context.data_sources.add_pandas(f"{name}_source")
    batch_definition = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("whole")
    suite = gx.ExpectationSuite(name=name)
    suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column="owner_id"))
    suite.add_expectation(gx.expectations.ExpectColumnValuesToBeInSet(column="stage", value_set=["Open", "Won"]))
    batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
    return batch.validate(suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5})


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    context = gx_context()
    good = _validate(context, "raw_good", pd.DataFrame({"owner_id": ["005A", "005B"], "stage": ["Open", "Won"]}))
    bad = _validate(context, "raw_bad", pd.DataFrame({"owner_id": ["005A", None], "stage": ["Open", "Teleported"]}))
    assert good.success and not bad.success
    out = tmp_path_factory.mktemp("docs") / "data_docs"
    # The failing result goes in as its JSON form, as it would after crossing from one pipeline task to another.
    index = build_data_docs([good, bad.to_json_dict()], out, run_name="run-2026-11-01")
    return {"index": index, "out": out, "good": good}


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.refs.append((tag, a["src"]))
        if tag == "link" and a.get("href"):
            self.refs.append((tag, a["href"]))


def _pages(out: Path) -> list[Path]:
    return sorted(out.rglob("*.html"))


def test_index_and_a_page_per_suite(site):
    assert site["index"] == site["out"] / "index.html"
    assert site["index"].is_file()
    pages = [p.relative_to(site["out"]).as_posix() for p in _pages(site["out"])]
    assert any(p.startswith("validations/raw_good/run-2026-11-01/") for p in pages), pages
    assert any(p.startswith("validations/raw_bad/run-2026-11-01/") for p in pages), pages
    assert "expectations/raw_bad.html" in pages
    index = site["index"].read_text()
    assert "raw_good" in index and "raw_bad" in index


def test_failing_expectation_is_shown_failed(site):
    (page,) = (site["out"] / "validations" / "raw_bad").rglob("*.html")
    text = page.read_text()
    assert "Failed" in text
    assert "values must belong to this set" in text and "Teleported" in text
    assert "values must never be null" in text
    assert "Data asset: raw_bad" in text
    (good,) = (site["out"] / "validations" / "raw_good").rglob("*.html")
    assert "Succeeded" in good.read_text()


def test_no_script_or_style_is_loaded_from_the_network(site):
    checked = 0
    for page in _pages(site["out"]):
        parser = _Tags()
        parser.feed(page.read_text())
        assert parser.refs, page
        for tag, url in parser.refs:
            assert not re.match(r"^\s*(https?:)?//", url, re.I), (page, tag, url)
            target = (page.parent / url.split("?")[0]).resolve()
            assert target.is_file(), (page, tag, url)
            assert target.is_relative_to(site["out"].resolve()), (page, url)
            checked += 1
        text = page.read_text()
        assert "integrity=" not in text and "crossorigin" not in text, page  # would block file:// scripts
    assert checked > 50
    assert offline_violations(site["out"]) == []


def test_font_awesome_fonts_are_there_for_its_css(site):
    css = site["out"] / "static" / "vendor" / "fontawesome-free" / "css" / "all.min.css"
    urls = set(re.findall(r"url\(([^)]+)\)", css.read_text()))
    assert urls
    for url in urls:
        assert (css.parent / url.strip("'\"")).is_file(), url


def test_callers_result_is_not_changed(site):
    assert "run_id" not in site["good"].meta


def test_every_cdn_url_in_the_gx_templates_is_vendored():
    """A GX upgrade that adds or bumps a CDN asset fails here, before it fails on an offline server."""
    found = set()
    for template in GX_TEMPLATES.glob("*.j2"):
        for m in re.finditer(r"<(?:script|link)\b[^>]*?(?:src|href)=\"(https?://[^\"]+)\"", template.read_text()):
            found.add(m.group(1))
    assert found, "no CDN URLs found: has GX moved its templates?"
    assert found <= set(CDN_ASSETS), sorted(found - set(CDN_ASSETS))
    for target in CDN_ASSETS.values():
        assert (VENDOR_DIR / target).is_file(), target


def test_vendored_assets_stay_small_and_licensed():
    total = sum(p.stat().st_size for p in VENDOR_DIR.rglob("*") if p.is_file())
    assert total < 3_000_000, total
    for package in VENDOR_DIR.iterdir():
        names = {p.name for p in package.iterdir()}
        assert names & {"LICENSE", "LICENSE.txt", "package.json"}, package.name


def test_an_unknown_cdn_url_is_refused(tmp_path):
    (tmp_path / "static" / "styles").mkdir(parents=True)
    (tmp_path / "index.html").write_text('<html><head><script src="https://cdn.example.org/new.js"></script></head>')
    with pytest.raises(OfflineAssetError, match=r"new\.js"):
        make_offline(tmp_path)
