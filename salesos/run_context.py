"""Where one run reads and writes: the landing location, the archive, the build copy, the published file.

A run never writes the published warehouse in place. It builds a copy under `build/<run_id>/` with the
same file name (DuckDB names its catalog after the file stem, so views survive the rename), and
`publish` switches it in with its BI copy and finance exports (salesos.publish.versions).

The run id names folders (`archive/<run_id>`, `build/<run_id>`, `runs/<run_id>`, `run=<run_id>`), so it is
checked when a context is made, from the CLI, Airflow or XCom alike: see `safe_run_id`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunContext:
    run_id: str
    as_of: date
    exports: str
    warehouse: Path
    data_dir: Path
    settings_file: Path | None = None
    dbt_target: str = "duckdb"
    # publish although the exports were modified well after the as-of date (salesos.validate.gx_checks)
    allow_exports_after_as_of: bool = False
    # what `exports` holds (salesos.extract.connectors.SOURCES); None: the settings' `source`
    source: str | None = None
    # reload every raw table, rebuild every incremental dbt model and fit every forecast series again
    full_refresh: bool = False
    # publish although the published warehouse is of a later as-of date (a backfill replacing newer numbers)
    allow_older: bool = False
    # where the night's archive is also kept, write-once (a folder or fsspec URL, `<archive>/<run_id>/`);
    # None: beside a landing in object storage (salesos.extract.landing.archive_location), else only locally
    archive: str | None = None

    def __post_init__(self) -> None:
        """Every context, however made (the CLI, Airflow, XCom), is checked before a path is built from it."""
        check_run_id(self.run_id)
        for label, path in (("warehouse", self.warehouse), ("data dir", self.data_dir),
                            ("settings file", self.settings_file), ("exports", self.exports),
                            ("archive", self.archive)):
            if path is not None:
                check_path(str(path), label)
        if self.source is not None:
            from salesos.extract.connectors import connector_for

            connector_for(self.source)  # an unknown source is refused before anything is touched
        if self.warehouse.name in ("", ".", "..") or self.warehouse.name.startswith("."):
            raise RunIdError(f"warehouse {str(self.warehouse)!r}: the file name must be a plain name, "
                             "not empty, '.', '..' or hidden")

    @classmethod
    def create(
        cls,
        *,
        as_of: date,
        exports: str | Path,
        warehouse: str | Path,
        run_id: str | None = None,
        data_dir: str | Path | None = None,
        settings_file: str | Path | None = None,
        dbt_target: str = "duckdb",
        allow_exports_after_as_of: bool = False,
        source: str | None = None,
        full_refresh: bool = False,
        allow_older: bool = False,
        archive: str | None = None,
    ) -> RunContext:
        """Build a context with absolute paths; the run id defaults to the as-of date."""
        warehouse = Path(warehouse).expanduser().resolve()
        exports_str = str(exports)
        if "://" not in exports_str:
            exports_str = str(Path(exports_str).expanduser().resolve())
        return cls(
            run_id=safe_run_id(run_id or f"asof_{as_of.isoformat()}"),
            as_of=as_of,
            exports=exports_str,
            warehouse=warehouse,
            data_dir=Path(data_dir).expanduser().resolve() if data_dir else warehouse.parent,
            settings_file=Path(settings_file).expanduser().resolve() if settings_file else None,
            dbt_target=dbt_target,
            allow_exports_after_as_of=bool(allow_exports_after_as_of),
            source=source or None,
            full_refresh=bool(full_refresh),
            allow_older=bool(allow_older),
            archive=str(archive) if archive else None,
        )

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive" / self.run_id

    @property
    def kept_archive_root(self) -> str | None:
        """Where this night's archive is kept beyond the local one (`<root>/<run_id>/`), or None."""
        from salesos.extract.landing import archive_location

        return archive_location(self.exports, self.archive)

    @property
    def build_dir(self) -> Path:
        return self.data_dir / "build" / self.run_id

    @property
    def build_warehouse(self) -> Path:
        return self.build_dir / self.warehouse.name

    @property
    def run_dir(self) -> Path:
        """Logs, dbt artifacts and the summary of this run."""
        return self.data_dir / "runs" / self.run_id

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form, for Airflow XCom."""
        d = asdict(self)
        d["as_of"] = self.as_of.isoformat()
        for k in ("warehouse", "data_dir", "settings_file"):
            d[k] = str(d[k]) if d[k] is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunContext:
        return cls(
            run_id=d["run_id"],
            as_of=date.fromisoformat(d["as_of"]),
            exports=d["exports"],
            warehouse=Path(d["warehouse"]),
            data_dir=Path(d["data_dir"]),
            settings_file=Path(d["settings_file"]) if d.get("settings_file") else None,
            dbt_target=d.get("dbt_target", "duckdb"),
            allow_exports_after_as_of=bool(d.get("allow_exports_after_as_of", False)),
            source=d.get("source") or None,
            full_refresh=bool(d.get("full_refresh", False)),
            allow_older=bool(d.get("allow_older", False)),
            archive=d.get("archive") or None,
        )


class RunIdError(ValueError):
    """A run id or path that cannot be used safely as a folder name or in SQL; refused before anything is touched."""


# What a run id may hold after mapping: a folder name that is never '.', '..', hidden, an option or a path.
_RUN_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,199}")
# Airflow's own run ids (its default allowed_run_id_pattern is [A-Za-z0-9_.~:+-]+) carry ':', '+' and '~',
# e.g. manual__2026-10-31T02:00:00+00:00: each maps to '_', one for one, so the mapping is deterministic and
# keeps the length. Anything else (a path separator, a quote, a space, a control character) is refused.
_AIRFLOW_ONLY = str.maketrans({":": "_", "+": "_", "~": "_"})


def safe_run_id(run_id: str) -> str:
    """The folder name of a run id: Airflow's ':', '+', '~' become '_'; anything unsafe is refused (RunIdError).

    Refused rather than rewritten, because a rewrite hides the mistake and can collide: `..` once became
    the archive's parent folder, which the extract step then replaced.
    """
    if not isinstance(run_id, str) or not run_id:
        raise RunIdError("run id is empty")
    mapped = run_id.translate(_AIRFLOW_ONLY)
    if not _RUN_ID.fullmatch(mapped) or set(mapped) <= {"."}:
        raise RunIdError(
            f"run id {run_id!r} cannot be used: it must start with a letter or digit and hold only letters, "
            "digits, '.', '_', '-' (Airflow's ':', '+', '~' become '_'), at most 200 characters, "
            "no path separator, no quote, no space"
        )
    return mapped


def check_run_id(run_id: str) -> str:
    """A run id that is already a safe folder name (what safe_run_id returns), else RunIdError."""
    if safe_run_id(run_id) != run_id:
        raise RunIdError(f"run id {run_id!r} is not a folder name; use {safe_run_id(run_id)!r}")
    return run_id


def check_path(path: str, label: str) -> str:
    """A path with no control character (a newline or NUL in a path is always a mistake, and breaks logs)."""
    bad = [c for c in path if unicodedata.category(c) == "Cc"]
    if bad:
        raise RunIdError(f"{label} {path!r}: contains control character(s) {', '.join(repr(c) for c in bad)}")
    return path
