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
