"""Build the report's pages into a folder: from a warehouse file (read-only) or an open connection."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from salesos.publish.report.money import Money
from salesos.publish.report.pages import NAV, Builder, Page, ReportContext

HERE = Path(__file__).resolve().parent
MANIFEST = "manifest.json"
# The vendored chart library (the one copy in the tree, shared with the offline Data Docs).
VEGA_FILES = ("vega/vega.min.js", "vega/package.json", "vega-lite/vega-lite.min.js", "vega-lite/LICENSE",
              "vega-embed/vega-embed.min.js", "vega-embed/LICENSE")

__all__ = ["MANIFEST", "ReportContext", "ReportResult", "build_report", "context_for_run", "find_version",
           "missing_pages", "report_for_version", "write_report"]


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


def table_html(block: dict[str, Any]) -> Markup:
    """A sortable table's markup, written here rather than in the template: the rep pages' tables are most of
    the report's cells, and a template loop per cell cost more than every query of the report."""
    num = ' class="num"'
    head = "".join(f'<th scope="col"{num if c.get("numeric") else ""}><button type="button">'
                   f"{escape(c['label'])}</button></th>" for c in block["columns"])
    body = []
    for row in block["rows"]:
        cells = []
        for cell in row:
            attrs = num if cell.get("numeric") else ""
            if cell.get("sort") is not None:
                attrs += f' data-sort="{escape(cell["sort"])}"'
            text = escape(cell["text"])
            if cell.get("href"):
                text = Markup(f'<a href="{escape(cell["href"])}">{text}</a>')
            cells.append(f"<td{attrs}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    table_id = f' id="{escape(block["id"])}"' if block.get("id") else ""
    return Markup(f'<table class="sortable"{table_id}><thead><tr>{head}</tr></thead><tbody>\n'
                  + "\n".join(body) + "\n</tbody></table>")


def _render(pages: list[Page], out: Path, ctx: ReportContext) -> int:
    env = _environment()
    template = env.get_template("page.html.j2")
    locale = _script_json(Money(ctx.currency).vega_locale())
    nav = [{"section": s, "href": href, "title": title} for s, href, title in NAV]
    meta = {"as_of": ctx.as_of.isoformat(), "run_id": ctx.run_id, "version": ctx.version, "currency": ctx.currency,
            "warehouse": ctx.warehouse}
    charts = 0
    for page in pages:
        for section in page.sections:
            for block in section["blocks"]:
                if block["kind"] == "table" and block["rows"]:
                    block["html"] = table_html(block)
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
    for left in out_dir.parent.glob(f".{out_dir.name}.*-*"):  # what a killed build left (any process's)
        if left.name.startswith((f".{out_dir.name}.building-", f".{out_dir.name}.old-")):
            shutil.rmtree(left, ignore_errors=True)
    try:
        pages = Builder(con, ctx).pages(data_docs_href)
        _copy_assets(tmp)
        n_charts = _render(pages, tmp, ctx)
        manifest = {"as_of": ctx.as_of.isoformat(), "run_id": ctx.run_id, "version": ctx.version,
                    "currency": ctx.currency, "stale_days": ctx.stale_days, "pushed_times": ctx.pushed_times,
                    "pages": [p.path for p in pages],
                    "charts": {p.path: len(p.charts) for p in pages}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return ReportResult(out_dir / "index.html", len(pages), n_charts, time.perf_counter() - started)


def missing_pages(folder: Path) -> list[str]:
    """The pages (and assets) a built report's manifest names that are not in `folder`."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return [MANIFEST]
    names = json.loads(manifest.read_text(encoding="utf-8"))["pages"]
    needed = [*names, "assets/report.js", "assets/report.css", *(f"assets/vendor/{v}" for v in VEGA_FILES)]
    return [n for n in needed if not (folder / n).is_file()]


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


def find_version(versions: list[Any], wanted: str | None) -> Any:
    """A kept version by number (`3`), id or id prefix (`000003`), or run id; the live one when None."""
    if wanted is None:
        live = [v for v in versions if v.live]
        if not live:
            raise ValueError("no version is live")
        return live[0]
    matches = [v for v in versions if (wanted.isdigit() and int(v.version_id.split("_", 1)[0]) == int(wanted))
               or v.version_id.startswith(wanted) or v.run_id == wanted]
    if len(matches) != 1:
        known = ", ".join(v.version_id for v in versions) or "none"
        raise ValueError(f"version {wanted!r} matches {len(matches)} kept versions; known: {known}")
    return matches[0]


def report_for_version(version: Any, warehouse: Path, data_dir: Path, out: Path,
                       settings: Any | None = None) -> ReportResult:
    """Build the report of a kept version from its read-only copy.

    The currency and the deal flags are the ones the run's own report was built with (its manifest), unless
    `settings` are given; with neither, the default settings.
    """
    from dataclasses import replace

    from salesos.settings import load_settings

    run_dir = data_dir / "runs" / version.run_id
    ctx = context_for_run(run_dir, as_of=date.fromisoformat(version.as_of), run_id=version.run_id,
                          version=version.version_id, warehouse=warehouse,
                          settings=settings or load_settings(None))
    manifest = run_dir / "report" / MANIFEST
    if settings is None and manifest.is_file():
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
        ctx = replace(ctx, currency=recorded.get("currency", ctx.currency),
                      stale_days=recorded.get("stale_days", ctx.stale_days),
                      pushed_times=recorded.get("pushed_times", ctx.pushed_times))
    return build_report(version.path, out, ctx)
