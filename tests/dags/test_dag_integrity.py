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
             "forecast.projection", "publish"]
    assert sorted(dag.task_ids) == sorted(order)
    for upstream, downstream in itertools.pairwise(order):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    assert dag.doc_md and "extract" in dag.doc_md
    assert dag.catchup is False
    assert dag.get_task("extract").retries >= 1


def test_forecast_chunks_are_mapped_and_only_warehouse_tasks_take_the_writer_pool(dagbag):
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    dag = dagbag.dags["sales_nightly"]
    assert isinstance(dag.get_task("forecast.chunk"), MappedOperator)
    pools = {t.task_id: t.pool for t in dag.tasks}
    assert {t for t, p in pools.items() if p == "duckdb_writer"} == {
        "extract", "dbt_build", "forecast.plan", "forecast.store", "forecast.projection", "publish"}
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


def test_dag_files_do_no_work_at_import():
    text = (DAGS_FOLDER / "sales_nightly.py").read_text()
    for heavy in ("import pandas", "import duckdb", "import prophet", "import great_expectations", "os.environ["):
        assert heavy not in text.split("def sales_nightly")[0], heavy


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
