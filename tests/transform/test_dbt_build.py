import json

from salesos.transform.dbt_build import parse_run_results


def _results(tmp_path, results):
    p = tmp_path / "run_results.json"
    p.write_text(json.dumps({"elapsed_time": 3.21, "results": results}))
    return p


def test_counts_models_and_tests(tmp_path):
    p = _results(
        tmp_path,
        [
            {"unique_id": "model.salesos.fct_opportunities", "status": "success", "message": "OK"},
            {"unique_id": "model.salesos.stg_crm__users", "status": "success", "message": "OK"},
            {"unique_id": "test.salesos.unique_x", "status": "pass", "message": None},
            {"unique_id": "test.salesos.fresh", "status": "warn", "message": "Got 2 results"},
            {"unique_id": "unit_test.salesos.fct.t1", "status": "pass", "message": None},
        ],
    )
    r = parse_run_results(p)
    assert (r.models, r.tests_passed, r.tests_warned, r.failures) == (2, 2, 1, [])
    assert r.elapsed_seconds == 3.21


def test_failures_are_named(tmp_path):
    p = _results(
        tmp_path,
        [
            {"unique_id": "test.salesos.unique_fct_opportunities_opportunity_id", "status": "fail",
             "message": "Got 3 results, configured to fail if != 0\nmore"},
            {"unique_id": "model.salesos.mart_x", "status": "error", "message": "Binder Error"},
        ],
    )
    r = parse_run_results(p)
    assert r.failures == [
        "test.salesos.unique_fct_opportunities_opportunity_id: fail: Got 3 results, configured to fail if != 0",
        "model.salesos.mart_x: error: Binder Error",
    ]


def test_missing_results_is_a_failure(tmp_path):
    assert parse_run_results(tmp_path / "nope.json").failures


def test_full_refresh_flag_and_run_id_var(monkeypatch):
    from salesos.settings import load_settings
    from salesos.transform.dbt_build import dbt_args, dbt_vars

    assert dbt_args(["build"], full_refresh=True) == ["build", "--full-refresh"]
    assert dbt_args(["build", "--full-refresh"], full_refresh=True) == ["build", "--full-refresh"]
    assert dbt_args(["test"], full_refresh=True) == ["test"]  # nothing to refresh
    assert dbt_args(["build"], full_refresh=False) == ["build"]
    settings = load_settings()
    assert dbt_vars(settings, "2026-10-31", "night2")["run_id"] == "night2"
    assert "run_id" not in dbt_vars(settings, "2026-10-31")
