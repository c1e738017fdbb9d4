"""Where the latest report lives beside a warehouse (salesos.publish.versions publishes it there).

`report/<stem>` is a symbolic link to `report/.<stem>-<version_id>/`, the pages of the live version: one
rename of the link switches every page at once, so a reader never sees pages of two versions.
"""

from __future__ import annotations

from pathlib import Path


def report_path(warehouse: Path) -> Path:
    """The latest report of a warehouse: `report/<stem>/` in the warehouse's folder (open its index.html)."""
    return warehouse.parent / "report" / warehouse.stem


def report_pages(warehouse: Path, version_id: str) -> Path:
    """The folder of one version's pages, which `report_path` links to while that version is live."""
    return report_path(warehouse).parent / f".{warehouse.stem}-{version_id}"
