"""The export contract page names every field of the contract, so docs and code cannot drift apart."""

import re
from pathlib import Path

from salesos.contract import EXPORTS

ROOT = Path(__file__).resolve().parents[1]


def test_contract_page_lists_every_file_and_field_with_required_marked():
    text = (ROOT / "docs" / "export-contract.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+\.csv)` \| (.*) \|$", text, re.M) if "," in m.group(2)}
    for export in EXPORTS:
        assert export.filename in rows, export.filename
        listed = rows[export.filename]
        for f in export.fields:
            if f.required:
                assert f"**{f.api_name}**" in listed, (export.filename, f.api_name)
            else:
                assert re.search(rf"(?<![*\w]){re.escape(f.api_name)}(?![*\w])", listed), (export.filename, f.api_name)


def test_readme_shows_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_architecture_page_names_only_paths_that_exist_and_every_module():
    """docs/architecture.md stays true: each path it names exists, each module of the pipeline is named."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`((?:salesos|forecasting|dags|dbt_project|config|expectations|tests|benchmarks)"
                           r"/[^`*<> ]*)`", text))
    assert named, "the page names no path"
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"
    modules = [p.relative_to(ROOT).as_posix() for d in ("salesos", "forecasting") for p in (ROOT / d).rglob("*.py")
               if p.name != "__init__.py"]
    unnamed = sorted(m for m in modules if m not in text and Path(m).name not in text)
    assert not unnamed, f"modules docs/architecture.md does not mention: {unnamed}"
