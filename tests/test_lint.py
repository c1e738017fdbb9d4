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
