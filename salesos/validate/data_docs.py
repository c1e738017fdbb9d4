"""Great Expectations Data Docs for a run's validation results, made to render with no network at all.

GX's Data Docs pages load bootstrap, jquery, popper, bootstrap-table, bootstrap-datepicker, font-awesome,
bootstrap-dark and vega from public CDNs, and its logo from an S3 bucket. A locked-down server cannot reach
them, so the pages would open unstyled and without their tables. `build_data_docs` writes the site with GX
itself, then points every one of those URLs at copies vendored in `salesos/validate/static/vendor/` (their
origin is in `static/README.md`) and checks that no page loads anything from the network.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

VENDOR_DIR = Path(__file__).resolve().parent / "static" / "vendor"
SITE_NAME = "salesos_run"

# Every CDN URL in GX 1.24's page templates (render/view/templates/*.j2) -> its vendored copy under static/vendor/.
CDN_ASSETS: dict[str, str] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap/js/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js/umd/popper.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker/css/bootstrap-datepicker.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker/js/bootstrap-datepicker.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome-free/css/all.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
        "bootstrap-table/extensions/filter-control/bootstrap-table-filter-control.min.js"
    ),
    # 1.19.0's filter-control css (both spellings) equals 1.19.1's byte for byte but for its version comment.
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": (
        "bootstrap-table/extensions/filter-control/bootstrap-table-filter-control.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (
        "bootstrap-table/extensions/filter-control/bootstrap-table-filter-control.min.css"
    ),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "bootstrap-dark/css/bootstrap-prefers-dark.min.css"
    ),
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed/vega-embed.min.js",
}

# GX's logo comes from this bucket (an <img> in the navbar, a CSS background in dark mode); GX ships the
# light logo in the site's own static/images/, which stands in for any image it does not ship.
_GX_ASSETS_BUCKET = re.compile(
    r"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/([\w.-]+)[^\"')\s]*"
)
_GX_FALLBACK_IMAGE = "logo-long.png"

_TAG = re.compile(r"<(script|link|img)\b[^>]*>", re.IGNORECASE)
_URL_ATTR = re.compile(r"""\b(src|href)\s*=\s*(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
# Subresource-integrity and CORS attributes make a browser refuse a script read from file://; they only
# made sense for the CDN copy (whose sha384 our vendored bootstrap.min.js and popper.min.js match).
_SRI_ATTRS = re.compile(r"""\s+(integrity|crossorigin)(\s*=\s*(["']).*?\3)?""", re.IGNORECASE | re.DOTALL)


class OfflineAssetError(RuntimeError):
    """A Data Docs page still loads a script, style, font or image from the network."""


def build_data_docs(
    results: Iterable[Any],
    out_dir: Path,
    run_name: str | None = None,
    run_time: dt.datetime | None = None,
    include_suites: bool = True,
) -> Path:
    """Write a self-contained Data Docs site for one run's validation results; return its index.html.

    `results` are the `ExpectationSuiteValidationResult` objects that `batch.validate(...)` returns (or their
    `to_json_dict()` form, for results that crossed a process boundary), one per suite. The callers' objects
    are not changed. `run_name` (the pipeline's run id) and `run_time` label the run in the pages, since
    `batch.validate` records neither. With `include_suites` the site also gets one page per expectation suite,
    rebuilt from the expectations in the results. Raises OfflineAssetError when a page would still reach the
    network, which means GX's templates changed and `CDN_ASSETS` needs the new URL.
    """
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    run_time = run_time or dt.datetime.now(dt.UTC)
    if run_time.tzinfo is None:
        run_time = run_time.replace(tzinfo=dt.UTC)

    context = _docs_context(out_dir)
    store = context.validation_results_store
    seen: set[tuple[str, str]] = set()
    keys: list[Any] = []
    suites: dict[str, Any] = {}
    for raw in results:
        result = _as_result(raw)
        name = result.suite_name
        run_id = result.meta.get("run_id")
        if not isinstance(run_id, RunIdentifier):
            run_id = RunIdentifier(run_name=run_name, run_time=run_time)
            result.meta["run_id"] = run_id
            result.meta.setdefault("validation_time", run_time)
        spec = result.meta.get("batch_spec")
        if isinstance(spec, dict) and result.asset_name and not spec.get("data_asset_name"):
            spec["data_asset_name"] = result.asset_name  # so the page header names the table, not "None"
        batch = base = _batch_identifier(result)
        n = 1
        while (name, batch) in seen:  # one suite validated twice in a run: keep both pages
            n += 1
            batch = f"{base}-{n}"
        seen.add((name, batch))
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=name), run_id=run_id, batch_identifier=batch
        )
        store.store_validation_results(result, key)
        keys.append(key)
        if include_suites and name not in suites:
            suites[name] = _suite_from_result(result)

    for suite in suites.values():
        context.suites.add(suite)

    context.build_data_docs(site_names=[SITE_NAME])
    index = out_dir / "index.html"
    if not index.is_file():
        raise RuntimeError(f"Great Expectations wrote no Data Docs index in {out_dir}")
    # GX logs a page it fails to render and goes on; a run's docs must not silently lack a suite.
    missing = [
        key.to_fixed_length_tuple()
        for key in keys
        if not context.get_docs_sites_urls(resource_identifier=key, site_name=SITE_NAME)[0]["site_url"]
    ]
    if missing:
        raise RuntimeError(f"Great Expectations could not render these results (see its log): {missing}")
    make_offline(out_dir)
    return index


def make_offline(site_dir: Path) -> list[Path]:
    """Vendor the assets into site_dir/static/vendor/ and point every page at them; return the pages rewritten.

    Also usable on a site GX built elsewhere (e.g. by a Checkpoint's UpdateDataDocsAction). Raises
    OfflineAssetError when something would still be fetched from the network.
    """
    site_dir = Path(site_dir).resolve()
    vendor = site_dir / "static" / "vendor"
    shutil.copytree(VENDOR_DIR, vendor, dirs_exist_ok=True)
    images = site_dir / "static" / "images"
    changed: list[Path] = []
    for path in sorted(site_dir.rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        new = _rewrite_html(text, path.parent, site_dir)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    for path in sorted((site_dir / "static" / "styles").glob("*.css")):  # GX's own css, as copied to the site
        text = path.read_text(encoding="utf-8")
        new = _rewrite_bucket_urls(text, path.parent, images)
        if new != text:
            path.write_text(new, encoding="utf-8")
    problems = offline_violations(site_dir)
    if problems:
        raise OfflineAssetError("Data Docs would load from the network:\n" + "\n".join(problems))
    return changed


def offline_violations(site_dir: Path) -> list[str]:
    """Every place a page of the site would fetch from the network, or points at a local file that is missing.

    Looks at <script src>, <link href> (stylesheets, icons), <img src> and CSS url(...) in pages and in the
    site's css files; plain <a href> links are only navigation and are allowed to leave the site.
    """
    site_dir = Path(site_dir).resolve()
    problems: list[str] = []
    for path in sorted(site_dir.rglob("*.html")):
        rel = path.relative_to(site_dir)
        collector = _ResourceCollector()
        collector.feed(path.read_text(encoding="utf-8"))
        for tag, url in collector.urls + [("style", u) for u in _css_urls(collector.styles)]:
            problem = _check_url(url, path.parent, site_dir)
            if problem:
                problems.append(f"{rel}: <{tag}> {url} {problem}")
    for path in sorted(site_dir.rglob("*.css")):
        for url in _css_urls(path.read_text(encoding="utf-8", errors="replace")):
            problem = _check_url(url, path.parent, site_dir)
            if problem:
                problems.append(f"{path.relative_to(site_dir)}: url({url}) {problem}")
    return problems


def _docs_context(out_dir: Path) -> Any:
    """An ephemeral GX context whose only site we build is a plain folder at out_dir, with no how-to banners."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(
        site_name=SITE_NAME,
        site_config={
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(out_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    return context


def _as_result(raw: Any) -> Any:
    """A private copy of one suite's result, so filling in its run id never touches the caller's object."""
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        expectationSuiteValidationResultSchema,
    )

    if isinstance(raw, ExpectationSuiteValidationResult):
        return copy.deepcopy(raw)
    if isinstance(raw, Mapping):
        return expectationSuiteValidationResultSchema.load(copy.deepcopy(dict(raw)))
    raise TypeError(f"expected an ExpectationSuiteValidationResult or its dict, got {type(raw).__name__}")


def _batch_identifier(result: Any) -> str:
    """The batch id GX itself would file the result under (`<datasource>-<asset>`), safe as a file name."""
    batch = ""
    for r in result.results:
        batch = str((r.expectation_config.kwargs or {}).get("batch_id") or "") if r.expectation_config else ""
        if batch:
            break
    if not batch:
        definition = result.meta.get("active_batch_definition") or {}
        parts = [definition.get("datasource_name"), definition.get("data_asset_name")]
        batch = "-".join(str(p) for p in parts if p) or result.suite_name
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", batch)


def _suite_from_result(result: Any) -> Any:
    """The suite as it was run, rebuilt from the configurations echoed in its result (minus the batch id)."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    suite = gx.ExpectationSuite(name=result.suite_name)
    for r in result.results:
        cfg = r.expectation_config
        if cfg is None:
            continue
        kwargs = {k: v for k, v in (cfg.kwargs or {}).items() if k != "batch_id"}
        try:
            suite.add_expectation_configuration(
                ExpectationConfiguration(type=cfg.type, kwargs=kwargs, meta=dict(cfg.meta or {}))
            )
        except Exception as exc:  # a suite page is a nicety; the validation page is what matters
            log.warning("data docs: leaving %s out of suite page %s: %s", cfg.type, result.suite_name, exc)
    return suite


def _relative(target: Path, base: Path) -> str:
    return Path(os.path.relpath(target, base)).as_posix()


def _local_image(name: str, base: Path, images: Path) -> str:
    target = images / name
    return _relative(target if target.is_file() else images / _GX_FALLBACK_IMAGE, base)


def _rewrite_bucket_urls(text: str, base: Path, images: Path) -> str:
    return _GX_ASSETS_BUCKET.sub(lambda m: _local_image(m.group(1), base, images), text)


def _rewrite_html(text: str, base: Path, site_dir: Path) -> str:
    """Point each <script>/<link>/<img> that loads from a CDN at the vendored file, relative to the page.

    Also repairs GX's own links into static/ that miss by a level (favicon.j2 climbs one `../` too few on
    validation pages), so a page never asks for a file that is not there.
    """
    vendor = site_dir / "static" / "vendor"
    images = site_dir / "static" / "images"

    def tag(match: re.Match[str]) -> str:
        html = match.group(0)
        vendored = False

        def attr(m: re.Match[str]) -> str:
            nonlocal vendored
            url = m.group(3).strip()
            if url in CDN_ASSETS:
                vendored = True
                return f"{m.group(1)}={m.group(2)}{_relative(vendor / CDN_ASSETS[url], base)}{m.group(2)}"
            local = re.fullmatch(r"(?:\.\./|\./)*(static/[^?#]+)", url)
            if local and not (base / url).is_file() and (site_dir / local.group(1)).is_file():
                return f"{m.group(1)}={m.group(2)}{_relative(site_dir / local.group(1), base)}{m.group(2)}"
            return m.group(0)

        html = _URL_ATTR.sub(attr, html)
        if vendored:
            html = _SRI_ATTRS.sub("", html)
        return html

    text = _TAG.sub(tag, text)
    return _rewrite_bucket_urls(text, base, images)  # the navbar <img> and the dark-mode css background


_CSS_URL = re.compile(r"""url\(\s*(["']?)(.*?)\1\s*\)""", re.IGNORECASE)
_CSS_IMPORT = re.compile(r"""@import\s+(["'])(.*?)\1""", re.IGNORECASE)


def _css_urls(css: str) -> list[str]:
    return [m.group(2) for m in _CSS_URL.finditer(css)] + [m.group(2) for m in _CSS_IMPORT.finditer(css)]


def _check_url(url: str, base: Path, site_dir: Path) -> str | None:
    """Why loading url from a page in base breaks offline, or None when it is fine."""
    url = url.strip()
    lower = url.lower()
    if not url or lower.startswith(("data:", "#", "about:", "javascript:")):
        return None
    if re.match(r"^([a-z][a-z0-9+.-]*:)?//", lower):
        return "is fetched from the network"
    local = (base / url.split("#", 1)[0].split("?", 1)[0]).resolve()
    if not local.is_file():
        return "points at a missing file"
    if not local.is_relative_to(site_dir):
        return "points outside the site"
    return None


class _ResourceCollector(HTMLParser):
    """The URLs a browser fetches by itself while showing a page (not <a> links), plus inline <style> text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str]] = []
        self.styles: str = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): v or "" for k, v in attrs}
        if tag in ("script", "img", "iframe", "source", "video", "audio", "embed") and values.get("src"):
            self.urls.append((tag, values["src"]))
        elif tag == "link" and values.get("href"):
            self.urls.append((tag, values["href"]))
        if values.get("style"):
            self.styles += values["style"] + "\n"
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles += data
