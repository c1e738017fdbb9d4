"""The sales hierarchy as the dbt project declares it (var `hierarchy` in dbt_project/dbt_project.yml).

The dbt models fan facts out to these levels with the macro `fan_out_levels`; the forecast step and the
settings' check of `forecast_levels` read the same entry through this module, so a level's name is written
once. The file is read on first use and kept (it is part of the code, not a setting a run changes).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

DBT_PROJECT_FILE = Path(__file__).resolve().parent.parent / "dbt_project" / "dbt_project.yml"


@dataclass(frozen=True)
class Level:
    """One level: its name and the fact's columns that give a member's key and label (none at the top)."""

    level: str
    key_column: str | None = None
    name_column: str | None = None


@dataclass(frozen=True)
class Hierarchy:
    """The levels top to bottom, the key and label of the top level's one member, the missing member's key."""

    levels: tuple[Level, ...]
    company_key: str
    company_name: str
    missing_member: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(level.level for level in self.levels)


def parse(doc: dict, source: str | Path = DBT_PROJECT_FILE) -> Hierarchy:
    """The hierarchy from a dbt_project.yml document; a one-line error naming the file when it is malformed."""
    try:
        h = doc["vars"]["hierarchy"]
        levels = tuple(Level(**entry) for entry in h["levels"])
        out = Hierarchy(levels, str(h["company_key"]), str(h["company_name"]), str(h["missing_member"]))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{source}: vars.hierarchy is malformed ({type(exc).__name__}: {exc})") from None
    if not levels or levels[0].key_column is not None or any(lv.key_column is None for lv in levels[1:]):
        raise ValueError(f"{source}: vars.hierarchy.levels must start with the one level without a key_column")
    if len(set(out.names)) != len(out.names):
        raise ValueError(f"{source}: vars.hierarchy.levels names a level twice")
    return out


@cache
def hierarchy(path: Path = DBT_PROJECT_FILE) -> Hierarchy:
    """The project's hierarchy (read once per process)."""
    return parse(yaml.safe_load(path.read_text(encoding="utf-8")), path)


def level_names() -> tuple[str, ...]:
    """The level names, top to bottom: ("company", "region", "segment", "team", "rep")."""
    return hierarchy().names
