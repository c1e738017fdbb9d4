"""The code passes its linters: ruff (with Airflow's AIR rules) on Python, sqlfluff on the dbt models."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_ruff():
    proc = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_sqlfluff_on_the_dbt_models():
    proc = subprocess.run([str(BIN / "sqlfluff"), "lint", "dbt_project/models"], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]


# The only modules that may read the process environment, and why (docs/architecture.md, "Configuration").
# Everything else gets its configuration as arguments: the RunContext (run options), Settings (the settings
# file) or a connection made by one of these.
ENVIRONMENT_LAYERS = {
    "salesos/cli.py": "the command line",
    "salesos/settings.py": "the settings layer",
    "salesos/orchestrate.py": "the Airflow deployment's SALESOS_EXPORTS/WAREHOUSE/DATA_DIR/SETTINGS/DBT_TARGET",
    "salesos/demo.py": "starts a local Airflow with its own environment",
    "salesos/warehouse/duckdb_limits.py": "connection config: SALESOS_DUCKDB_MEMORY_LIMIT, as profiles.yml",
    "salesos/warehouse/postgres.py": "connection config: the SALESOS_PG_* of profiles.yml",
    "salesos/warehouse/dbt_profile.py": "connection config: the environment dbt's profiles.yml reads",
    "salesos/warehouse/spark.py": "connection config: the SALESOS_SPARK_* of profiles.yml",
}
SCANNED = ("salesos", "forecasting", "dags")


def environment_reads(path: Path) -> list[str]:
    """`os.environ` used other than as an assignment target, `os.getenv`, or `environ`/`getenv` imported from os."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    stores = {id(n.value) for n in ast.walk(tree)
              if isinstance(n, ast.Subscript) and isinstance(n.ctx, (ast.Store, ast.Del))}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
            if node.attr in ("getenv", "getenvb", "environb") or (node.attr == "environ" and id(node) not in stores):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: from os import {a.name}" for a in node.names
                      if a.name in ("environ", "getenv", "environb", "getenvb")]
    return sorted(found, key=lambda r: int(r.split(":")[1]))


def test_no_environment_reads_outside_the_settings_and_cli_layers():
    files = sorted(p for top in SCANNED for p in (ROOT / top).rglob("*.py"))
    reads = [r for p in files if str(p.relative_to(ROOT)) not in ENVIRONMENT_LAYERS for r in environment_reads(p)]
    assert reads == [], "run options travel as arguments (RunContext, Settings), not through the environment"
    used = {str(p.relative_to(ROOT)) for p in files if environment_reads(p)}
    assert used <= set(ENVIRONMENT_LAYERS), used


# Writes of the process environment (`os.environ[...] = ...`, `del os.environ[...]`) outside those layers, and
# why: each sets up a process this one starts or is, never a way to pass a run option.
ENVIRONMENT_WRITES = {
    "forecasting/pool.py": "process start-up of a forecast worker: its own TMPDIR, where cmdstanpy writes",
}


def environment_writes(path: Path) -> list[str]:
    """`os.environ[...]` as an assignment or del target."""
    import ast

    return [f"{path.relative_to(ROOT)}:{n.lineno}: os.environ[...]" for n in ast.walk(ast.parse(path.read_text("utf-8")))
            if isinstance(n, ast.Subscript) and isinstance(n.ctx, (ast.Store, ast.Del))
            and isinstance(n.value, ast.Attribute) and n.value.attr == "environ"
            and isinstance(n.value.value, ast.Name) and n.value.value.id == "os"]


def test_environment_writes_outside_those_layers_are_the_listed_ones():
    files = sorted(p for top in SCANNED for p in (ROOT / top).rglob("*.py"))
    writers = {str(p.relative_to(ROOT)) for p in files if environment_writes(p)} - set(ENVIRONMENT_LAYERS)
    assert writers == set(ENVIRONMENT_WRITES), "a process's environment is set at its start-up, and listed here"


def test_the_check_finds_an_environment_write(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    code = tmp_path / "m.py"
    code.write_text("import os\nos.environ['W'] = '1'\ndel os.environ['W']\nx = os.environ.get('R')\n", encoding="utf-8")
    assert environment_writes(code) == ["m.py:2: os.environ[...]", "m.py:3: os.environ[...]"]


def test_the_check_finds_every_form_of_an_environment_read(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    code = tmp_path / "m.py"
    code.write_text("import os\nfrom os import getenv\na = os.environ.get('X')\nb = os.getenv('Y')\n"
                    "c = dict(os.environ)\nd = os.environ['Z']\nos.environ['W'] = '1'\n", encoding="utf-8")
    assert environment_reads(code) == ["m.py:2: from os import getenv", "m.py:3: os.environ", "m.py:4: os.getenv",
                                       "m.py:5: os.environ", "m.py:6: os.environ"]


def test_the_documented_environment_layers_are_the_allowed_ones():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for module in ENVIRONMENT_LAYERS:
        assert f"`{module}`" in doc, module
