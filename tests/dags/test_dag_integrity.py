"""Every DAG imports without errors, and sales_nightly is wired as documented."""

import itertools
from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_every_dag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.dags, "no DAG found"


def test_sales_nightly_is_extract_validate_build_forecast_publish(dagbag):
    dag = dagbag.dags["sales_nightly"]
    order = ["extract", "validate", "dbt_build", "forecast.plan", "forecast.chunk", "forecast.store",
             "forecast.projection", "forecast.marts", "publish"]
    assert sorted(dag.task_ids) == sorted(order)
    for upstream, downstream in itertools.pairwise(order):
        # the one dbt build of the forecast's marts also takes the store's result (whether to rescore)
        extra = {"forecast.store"} if downstream == "forecast.marts" else set()
        assert dag.get_task(downstream).upstream_task_ids == {upstream} | extra
    assert dag.doc_md and "extract" in dag.doc_md
    assert dag.catchup is False
    assert dag.get_task("extract").retries >= 1


def test_forecast_chunks_are_mapped_and_only_warehouse_tasks_take_the_writer_pool(dagbag):
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    dag = dagbag.dags["sales_nightly"]
    assert isinstance(dag.get_task("forecast.chunk"), MappedOperator)
    pools = {t.task_id: t.pool for t in dag.tasks}
    assert {t for t, p in pools.items() if p == "duckdb_writer"} == {
        "extract", "dbt_build", "forecast.plan", "forecast.store", "forecast.projection", "forecast.marts", "publish"}
    outlets = {a.name for a in dag.get_task("publish").outlets}
    assert outlets == {"salesos_marts", "salesos_forecasts"}


def test_failure_callback_records_and_notifies(dagbag, monkeypatch, tmp_path):
    import salesos.orchestrate as orch

    calls = []
    monkeypatch.setattr(orch, "record_failure", lambda ctx: calls.append("record") or {"task": "x"})
    monkeypatch.setattr(orch, "notify_failure", lambda ctx, failure: calls.append(("notify", failure["task"])))
    callbacks = dagbag.dags["sales_nightly"].get_task("validate").on_failure_callback
    for cb in callbacks if isinstance(callbacks, list) else [callbacks]:
        cb({})
    assert calls == ["record", ("notify", "x")]


# Run in a fresh interpreter: Airflow is imported first (the framework is not what is measured), then the DAG
# file is executed under an audit hook and an environment spy. Prints what the DAG file itself did.
IMPORT_PROBE = r"""
import importlib.util, json, os, sys, time
import airflow.sdk  # noqa: F401

path, watching = sys.argv[1], False
before, events, reads = set(sys.modules), [], []

def caller(skip=()):
    # the innermost frame that is not import machinery (or `skip`): whose work an event is
    frame = sys._getframe(2)
    while frame and (frame.f_code.co_filename.startswith("<frozen") or frame.f_code.co_filename.endswith(skip)):
        frame = frame.f_back
    return frame.f_code.co_filename if frame else "?"

def hook(event, args):
    if watching and event in ("open", "subprocess.Popen", "os.system", "socket.connect", "sqlite3.connect"):
        events.append([event, str(args[0]), caller()])

sys.addaudithook(hook)
real_getitem = os._Environ.__getitem__

def spy(self, key):
    if watching and str(key).startswith("SALESOS"):
        reads.append([key, caller(("os.py", "_collections_abc.py"))])
    return real_getitem(self, key)

os._Environ.__getitem__ = spy
spec = importlib.util.spec_from_file_location("sales_nightly_probe", path)
module = importlib.util.module_from_spec(spec)
watching, start = True, time.perf_counter()
spec.loader.exec_module(module)
seconds, watching = time.perf_counter() - start, False
print(json.dumps({"seconds": seconds, "events": events, "env_reads": reads,
                  "modules": sorted(set(sys.modules) - before),
                  "python": [sys.prefix, sys.base_prefix]}))
"""
# what a DAG file must never pull in at parse time: the pipeline and the heavy libraries behind it
HEAVY = ("salesos", "forecasting", "pandas", "duckdb", "prophet", "great_expectations", "dbt", "statsforecast")


def probe_dag_import(dag_file: Path, env: dict[str, str]) -> dict:
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", IMPORT_PROBE, str(dag_file)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def by_the_dag_file(records: list[list[str]], seen: dict) -> list[list[str]]:
    """The records whose caller is not Python's or a library's own code (nor the probe: "<string>"); an
    import of a library module (a file under Python's folders) is no work of the DAG's either."""
    python = tuple(seen["python"])
    return [r for r in records if not (r[-1].startswith(python) or r[-1] == "<string>"
                                       or (r[0] == "open" and r[1].startswith(python)))]


def test_dag_files_do_no_work_at_import(tmp_path):
    """Imported with the deployment's variables poisoned: no SALESOS_* read, no file opened (beyond Python's own
    modules), no process or connection, no pipeline or heavy library imported, and quick."""
    import os

    poisoned = {k: v for k, v in os.environ.items() if not k.startswith("SALESOS")} | {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "SALESOS_EXPORTS": "/nonexistent/exports", "SALESOS_WAREHOUSE": "/nonexistent/w.duckdb",
        "SALESOS_DATA_DIR": "/nonexistent/data", "SALESOS_SETTINGS": "/nonexistent/settings.yml",
        "SALESOS_DBT_TARGET": "no-such-target",
    }
    seen = probe_dag_import(DAGS_FOLDER / "sales_nightly.py", poisoned)
    # Airflow walks the whole environment when a DAG is made (its own reads are from its own files)
    assert by_the_dag_file(seen["env_reads"], seen) == []
    assert by_the_dag_file(seen["events"], seen) == []
    assert [m for m in seen["modules"] if m.split(".")[0] in HEAVY] == []
    assert seen["seconds"] < 2.0, seen["seconds"]  # typically well under 0.1 s


def test_the_import_probe_sees_work_done_at_import(tmp_path):
    """The probe itself: a DAG file that reads a variable, opens a file and imports the pipeline is caught."""
    import os

    bad = tmp_path / "bad_dag.py"
    bad.write_text("import os\nimport salesos.pipeline\nWAREHOUSE = os.environ.get('SALESOS_WAREHOUSE')\n"
                   f"open({str(tmp_path / 'bad_dag.py')!r}).close()\n", encoding="utf-8")
    env = dict(os.environ) | {"AIRFLOW_HOME": str(tmp_path / "airflow"), "SALESOS_WAREHOUSE": "w.duckdb"}
    seen = probe_dag_import(bad, env)
    assert by_the_dag_file(seen["env_reads"], seen) == [["SALESOS_WAREHOUSE", str(bad)]]
    assert ["open", str(bad), str(bad)] in by_the_dag_file(seen["events"], seen)
    assert "salesos.pipeline" in seen["modules"]


def test_the_source_param_names_every_source_the_cli_takes(dagbag):
    """The DAG param, the CLI option and the settings key all take salesos.extract.connectors.SOURCES."""
    from salesos.cli import build_parser
    from salesos.extract.connectors import SOURCES

    param = dagbag.dags["sales_nightly"].params.get_param("source")
    assert param.value is None  # the settings' source unless a run says otherwise
    run = next(a for a in build_parser()._subparsers._group_actions[0].choices["run"]._actions
               if a.dest == "source")
    for name in SOURCES:
        assert name in param.description and name in run.help


def test_every_yes_no_run_option_is_a_dag_param_and_a_cli_flag(dagbag):
    """A RunContext switch (full_refresh, allow_older, ...) is a DAG param (default off) and a `salesos run` flag."""
    import dataclasses

    from salesos.cli import build_parser
    from salesos.run_context import RunContext

    switches = [f.name for f in dataclasses.fields(RunContext) if f.type in ("bool", bool)]
    assert {"full_refresh", "allow_exports_after_as_of", "allow_older"} <= set(switches)
    params = dagbag.dags["sales_nightly"].params
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    flags = {a.dest: a for a in run._actions}
    for name in switches:
        assert params.get_param(name).value is False, name
        assert flags[name].option_strings == [f"--{name.replace('_', '-')}"] and flags[name].default is False, name
