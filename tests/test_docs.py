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


def test_contract_page_files_table_lists_every_export_as_required_or_not():
    """The Files table is written by hand (what each file holds, in a reader's words): it must still name every
    export of the contract, and say whether it is required as the contract does."""
    text = (ROOT / "docs" / "export-contract.md").read_text()
    files = dict(re.findall(r"^\| `([^`]+\.csv)` \| (yes|no) \|", text, re.M))
    assert files == {e.filename: "yes" if e.required else "no" for e in EXPORTS}


README = ROOT / "README.md"


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _commands(text: str) -> list[list[str]]:
    """Every command line of the README's bash blocks, split as a shell would (comments dropped)."""
    import shlex

    blocks = [block.replace("\\\n", " ") for block in re.findall(r"```bash\n(.*?)```", text, re.S)]  # continuations
    lines = [line for block in blocks for line in block.splitlines()]
    return [shlex.split(line.replace("[", "").replace("]", ""), comments=True) for line in lines if line.strip()]


def _make_targets() -> set[str]:
    return set(re.findall(r"^([\w.-]+):", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M))


def test_readme_shows_the_two_commands_and_every_make_target_it_names_exists():
    text = _readme()
    assert ["make", "demo"] in _commands(text) and ["make", "test"] in _commands(text)
    named = set(re.findall(r"`make ([\w.-]+)", text)) | {c[1] for c in _commands(text) if c[:1] == ["make"]}
    assert named - _make_targets() == set()
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_salesos_command_in_the_readme_parses():
    """Each `.venv/bin/salesos ...` line is a valid command line of the CLI (and backtest's own parser)."""
    from forecasting.backtest import build_parser as backtest_parser
    from salesos.cli import build_parser

    commands = [c[1:] for c in _commands(_readme()) if c and c[0] == ".venv/bin/salesos"]
    assert {c[0] for c in commands} >= {"run", "generate", "versions", "rollback", "forecast"}
    for argv in commands:
        try:
            if argv[:2] == ["forecast", "backtest"]:
                backtest_parser().parse_args(argv[2:])
            else:
                build_parser().parse_args(argv)
        except SystemExit as exc:
            raise AssertionError(f"README command does not parse: salesos {' '.join(argv)}") from exc


def test_every_option_the_readme_names_is_an_option_of_the_cli():
    import argparse

    from forecasting.backtest import build_parser as backtest_parser
    from salesos.cli import build_parser

    def options(parser: argparse.ArgumentParser) -> set[str]:
        found = {s for a in parser._actions for s in a.option_strings}
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    found |= options(sub)
        return found

    known = options(build_parser()) | options(backtest_parser())
    named = set(re.findall(r"`(--[a-z][\w-]*)", _readme()))
    assert named and named - known == set()


def test_every_path_and_link_in_the_readme_exists():
    text = _readme()
    links = {m for m in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text) if "://" not in m}
    tops = {p.name for p in ROOT.iterdir()} - {"data", ".venv", ".airflow", ".tools"}
    backticked = {m for m in re.findall(r"`([\w./-]+)`", text)
                  if m.split("/")[0] in tops and ("/" in m or "." in m)}
    missing = sorted(p for p in links | backticked if not (ROOT / p).exists())
    assert links and backticked and missing == []


def test_the_settings_the_readme_names_are_settings():
    from salesos.settings import Settings

    text = _readme()
    named = set(re.findall(r"`([a-z_]+): [^`]+`", text)) | set(re.findall(r"setting `([a-z_]+)`", text))
    assert named and named - set(Settings.__dataclass_fields__) == set()


def test_the_readmes_deployment_variables_are_the_ones_airflow_reads():
    table = set(re.findall(r"^\| `(SALESOS_\w+)` \|", _readme(), re.M))
    read = set(re.findall(r'"(SALESOS_\w+)"', (ROOT / "salesos" / "orchestrate.py").read_text(encoding="utf-8")))
    assert table and table == read


def test_the_models_the_readme_names_exist():
    """Every model or table the README names is a dbt model, or a source table (fct_forecasts: the forecast's)."""
    import yaml

    models = {p.stem for p in (ROOT / "dbt_project" / "models").rglob("*.sql")}
    for path in (ROOT / "dbt_project" / "models").rglob("*sources*.yml"):
        models |= {t["name"] for s in yaml.safe_load(path.read_text(encoding="utf-8"))["sources"] for t in s["tables"]}
    named = set(re.findall(r"\b((?:mart|fct|dim|stg|int)_[a-z0-9_]+)\b", _readme()))
    assert named and named - models == set()


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
