"""The nightly report: static HTML pages for sales leaders, built from the published warehouse.

One report per run at `<data>/runs/<run_id>/report/index.html`, and the latest beside the warehouse
(`report/<warehouse stem>/index.html`, published with the warehouse by salesos.publish.versions). The pages
open from disk with no server and no network: the data is inlined and the chart library (Vega-Lite) is
vendored beside them under `assets/`. `salesos report` builds the same pages for any kept version.

Layout: `pages.py` says what each page shows (read from the marts), `charts.py` the Vega-Lite specs,
`money.py` how amounts are written, `templates/page.html.j2` and `static/` the HTML, style and script.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from salesos.publish.report.money import Money
from salesos.publish.report.pages import NAV, Builder, Page, ReportContext

HERE = Path(__file__).resolve().parent
MANIFEST = "manifest.json"
# The vendored chart library (the one copy in the tree, shared with the offline Data Docs).
VEGA_FILES = ("vega/vega.min.js", "vega/package.json", "vega-lite/vega-lite.min.js", "vega-lite/LICENSE",
              "vega-embed/vega-embed.min.js", "vega-embed/LICENSE")

__all__ = ["MANIFEST", "ReportContext", "ReportResult", "build_report", "report_path", "write_report"]


def report_path(warehouse: Path) -> Path:
    """The latest report beside a warehouse: `report/<stem>/` in the warehouse's folder."""
    return warehouse.parent / "report" / warehouse.stem


@dataclass(frozen=True)
class ReportResult:
    index: Path
    pages: int
    charts: int
    seconds: float


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                              trim_blocks=False, lstrip_blocks=False)


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element (no `</script>` can end it early)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")


def _copy_assets(out: Path) -> None:
    from salesos.validate.data_docs import VENDOR_DIR

    assets = out / "assets"
    (assets / "vendor").mkdir(parents=True)
    for name in ("report.css", "report.js"):
        shutil.copyfile(HERE / "static" / name, assets / name)
    for rel in VEGA_FILES:
        target = assets / "vendor" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(VENDOR_DIR / rel, target)


def _render(pages: list[Page], out: Path, ctx: ReportContext) -> int:
    env = _environment()
    template = env.get_template("page.html.j2")
    locale = _script_json(Money(ctx.currency).vega_locale())
    nav = [{"section": s, "href": href, "title": title} for s, href, title in NAV]
    meta = {"as_of": ctx.as_of.isoformat(), "run_id": ctx.run_id, "version": ctx.version, "currency": ctx.currency,
            "warehouse": ctx.warehouse}
    charts = 0
    for page in pages:
        root = "../" * page.path.count("/")
        html = template.render(page=page, nav=nav, root=root, meta=meta, locale_json=locale,
                               charts_json=_script_json(page.charts))
        target = out / page.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html, encoding="utf-8")
        charts += len(page.charts)
    return charts


def write_report(con: Any, out_dir: Path, ctx: ReportContext, data_docs_href: str | None = None) -> ReportResult:
    """Build every page from `con` (read-only, the published marts) into out_dir, replacing what was there.

    The pages are written into a folder beside out_dir and renamed into place, so a reader never sees half a
    report; a failure leaves out_dir as it was.
    """
    started = time.perf_counter()
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.building-{os.getpid()}")
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        pages = Builder(con, ctx).pages(data_docs_href)
        _copy_assets(tmp)
        n_charts = _render(pages, tmp, ctx)
        manifest = {"as_of": ctx.as_of.isoformat(), "run_id": ctx.run_id, "version": ctx.version,
                    "currency": ctx.currency, "pages": [p.path for p in pages],
                    "charts": {p.path: len(p.charts) for p in pages}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return ReportResult(out_dir / "index.html", len(pages), n_charts, time.perf_counter() - started)


def build_report(warehouse: Path, out_dir: Path, ctx: ReportContext) -> ReportResult:
    """The report of one warehouse file (a build copy about to be published, or a kept version), read-only."""
    import duckdb

    from salesos.warehouse.duckdb_limits import apply_memory_limit

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        apply_memory_limit(con)
        return write_report(con, out_dir, ctx, data_docs_href=ctx.data_docs)
    finally:
        con.close()


def context_for_run(run_dir: Path, *, as_of: Any, run_id: str, version: str | None, warehouse: Path,
                    settings: Any) -> ReportContext:
    """What the report says about a run besides its marts: the checks' warnings, the dbt tests, the Data Docs."""
    def read(name: str) -> dict[str, Any]:
        p = run_dir / name
        try:
            return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}
        except ValueError:
            return {}

    validation = read("validate.json")  # the validate step's result: warnings as sentences, the Data Docs index
    docs = Path(validation["data_docs"]) if validation.get("data_docs") else run_dir / "data_docs" / "index.html"
    build = read("build.json")
    return ReportContext(as_of=as_of, run_id=run_id, version=version, currency=settings.reporting_currency,
                         warehouse=str(warehouse), stale_days=settings.report_stale_days,
                         pushed_times=settings.report_pushed_times,
                         data_docs=docs.resolve().as_uri() if docs.is_file() else None,
                         warnings=tuple(str(w) for w in validation.get("warnings", []) or []),
                         build={k: build.get(k) for k in ("tests_passed", "tests_warned", "models")})
