"""`make demo`: sample exports, one `sales_nightly` run through Airflow, and its summary.

Airflow runs with SQLite metadata in a project-local AIRFLOW_HOME (`.airflow/`), so the demo needs no
services. Running it again reuses the sample data and the metadata database and publishes the
same warehouse again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from salesos.pipeline import format_summary
from salesos.settings import PROJECT_ROOT

DEMO_AS_OF = date(2026, 10, 31)
DEMO_SCALE = "S"
DEMO_SEED = 42


def airflow_env(data_dir: Path, home: Path | None = None) -> dict[str, str]:
    """Environment for a self-contained Airflow: SQLite metadata, this repo's dags, no examples."""
    home = home or PROJECT_ROOT / ".airflow"
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "SALESOS_EXPORTS": str(data_dir / "landing"),
            "SALESOS_WAREHOUSE": str(data_dir / "warehouse" / "salesos.duckdb"),
            "SALESOS_DATA_DIR": str(data_dir),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    return env


def ensure_sample(landing: Path) -> None:
    stamp = landing / ".generated.json"
    # stage_export: a sample from before OpportunityStage.csv was written is generated again, so the demo shows it
    wanted = {"scale": DEMO_SCALE, "seed": DEMO_SEED, "as_of": DEMO_AS_OF.isoformat(), "stage_export": True}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        print(f"sample exports already in {landing}")
        return
    from salesos.generate import generate

    print(f"generating sample exports (scale {DEMO_SCALE}) into {landing} ...", flush=True)
    generate(landing, scale=DEMO_SCALE, seed=DEMO_SEED, as_of=DEMO_AS_OF)
    stamp.write_text(json.dumps(wanted))


def run_dag(env: dict[str, str], as_of: date) -> None:
    airflow = str(Path(sys.executable).with_name("airflow"))
    db = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    if not db.exists():
        print("creating the Airflow metadata database (once) ...", flush=True)
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    print(f"running sales_nightly for {as_of} through Airflow (airflow dags test) ...", flush=True)
    log_file = Path(env["SALESOS_DATA_DIR"]) / "demo_airflow.log"
    with log_file.open("w") as fh:
        proc = subprocess.run(
            [airflow, "dags", "test", "sales_nightly", as_of.isoformat()], env=env, stdout=fh, stderr=subprocess.STDOUT
        )
    if proc.returncode != 0:
        tail = log_file.read_text(errors="replace").splitlines()[-40:]
        raise SystemExit("the DAG run failed; last lines of " + str(log_file) + ":\n" + "\n".join(tail))
    print(f"Airflow output: {log_file}")


def main() -> int:
    data_dir = PROJECT_ROOT / "data"
    landing = data_dir / "landing"
    ensure_sample(landing)
    env = airflow_env(data_dir)
    run_dag(env, DEMO_AS_OF)
    latest = data_dir / "runs" / "latest.json"
    summary = json.loads(latest.read_text())
    print()
    print(format_summary(summary))
    print(f"task logs:      {Path(env['AIRFLOW__LOGGING__BASE_LOG_FOLDER'])}")
    print(
        f"\nopen it: .venv/bin/python -c \"import duckdb; print(duckdb.connect('{summary['warehouse']}', "
        "read_only=True).sql('select * from marts.mart_rep_performance limit 5'))\""
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
