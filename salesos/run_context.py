"""Where one run reads and writes: the landing location, the archive, the build copy, the published file.

A run never writes the published warehouse in place. It builds a copy under `build/<run_id>/` with the
same file name (DuckDB names its catalog after the file stem, so views survive the rename), and
`publish` moves that copy over the published file with one atomic `os.replace`.
"""

from __future__ import annotations

import re
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
        )

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive" / self.run_id

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
        )


def safe_run_id(run_id: str) -> str:
    """Airflow run ids carry ':' and '+'; keep them usable as folder names."""
    return re.sub(r"[^0-9A-Za-z._-]+", "_", run_id).strip("_")
