"""The nightly report: static HTML pages for sales leaders, built from the published warehouse.

One report per run at `<data>/runs/<run_id>/report/index.html`, and the latest beside the warehouse
(`report/<warehouse stem>/index.html`, published with the warehouse by salesos.publish.versions). The pages
open from disk with no server and no network: the data is inlined and the chart library (Vega-Lite) is
vendored beside them under `assets/`. `salesos report` builds the same pages for any kept version.

Layout: `build.py` writes the folder, `pages.py` says what each page shows (read from the marts), `charts.py`
the Vega-Lite specs, `money.py` how amounts are written, `templates/page.html.j2` and `static/` the HTML, style
and script, `paths.py` where the latest report lives.
"""

from salesos.publish.report.paths import report_pages, report_path

__all__ = ["report_pages", "report_path"]
