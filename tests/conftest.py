"""Shared fixtures: a tiny hand-written export folder whose every number is known."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (CI must not fail on the luck of the draw);
# HYPOTHESIS_PROFILE=explore draws new ones, to hunt for cases worth adding to the fixed tests.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Airflow reads its configuration on first import: keep tests away from ~/airflow and any real deployment.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="salesos-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

# `make test` hands whole files to two workers (`--dist loadfile`) in collection order, one file at a time.
# Collected alphabetically, the PostgreSQL end-to-end file came last and ran alone for minutes while the other
# worker sat idle. The files below take minutes each (`pytest --durations`), so they go first, longest first,
# and the many short files fill in behind them. A file missing from the list still runs, in its usual place.
LONGEST_FILES_FIRST = (
    "tests/warehouse/test_spark.py",
    "tests/test_end_to_end.py",
    # the first file to ask for the shared xs_night (after its own two builds): its worker builds it while the
    # other is on the S night above; the later files that read it (postgres, same_content, hubspot, mart_digests,
    # end_to_end_xs, ...) find it built
    "tests/test_renamed_stages.py",
    "tests/warehouse/test_postgres.py",
    "tests/test_fault_injection.py",
    "tests/extract/connectors/test_same_content.py",
    "tests/extract/connectors/test_hubspot_equals_salesforce.py",
    "tests/extract/connectors/test_fivetran_salesforce.py",
    "tests/transform/test_mart_digests.py",
    "tests/extract/connectors/test_fivetran_hubspot.py",
    "tests/test_end_to_end_runs.py",
    "tests/test_end_to_end_xs.py",
    "tests/deploy/test_services_native.py",
    "tests/test_incremental.py",
    "tests/publish/test_report_browser.py",
    "tests/transform/test_team_of_the_day.py",
    "tests/test_lint.py",
    "tests/validate/test_chunked.py",
    "tests/forecasting/test_nightly.py",
    "tests/validate/test_property_mutations.py",
)
ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-spark-nights", action="store_true", default=False,
                     help="also run the whole-night tests on a local Spark (about 40 min on 2 cores; `make test-spark`)")
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the tests marked slow: the exhaustive forms of tests whose default run checks "
                          "a fixed representative part (`make test-slow`)")


def pytest_configure(config: pytest.Config) -> None:
    """Keep the order below under `--dist loadfile`: xdist otherwise re-sorts the files by their number of tests
    (`--loadscope-reorder`, its default), which sent the longest files, with one or a few tests each, last."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Reorder the collected tests so the longest files start first (a stable sort: the rest keep their order).

    The end-to-end tests on Spark (marked e2e and spark: the whole night, 40-60 minutes on 2 cores at the load
    measured in benchmarks/results.md, and the rollback test's JVM starts) are far over the CI budget: they run
    with --run-spark-nights (`make test-spark`), not in `make test`. Tests marked slow run
    with --run-slow (`make test-slow`).
    """
    if config is not None and not config.getoption("--run-spark-nights"):
        skip = pytest.mark.skip(reason="a whole night on local Spark (about 40 min): run with `make test-spark`")
        for item in items:
            if "spark" in item.keywords and "e2e" in item.keywords:
                item.add_marker(skip)
    if config is not None and not config.getoption("--run-slow"):
        skip_slow = pytest.mark.skip(reason="slow: the exhaustive form of a test whose default run checks a fixed "
                                            "representative part; run with `make test-slow`")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip_slow)
    rank = {name: i for i, name in enumerate(LONGEST_FILES_FIRST)}

    def key(item: pytest.Item) -> int:
        try:
            return rank.get(item.path.resolve().relative_to(ROOT).as_posix(), len(rank))
        except ValueError:
            return len(rank)

    items.sort(key=key)


@pytest.fixture(scope="session")
def duckdb_1_4(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, list[str]], list[str]]:
    """Run a Python snippet under DuckDB 1.4.1 (what many BI drivers bundle); returns its printed words."""
    uv = ROOT / ".tools" / "uv" / "bin" / "uv"
    uv_cmd = [str(uv)] if uv.exists() else [sys.executable, "-m", "uv"]
    if not uv.exists() and not shutil.which("uv"):
        pytest.skip("uv is not installed (make installs it into .tools/)")
    old = tmp_path_factory.mktemp("duckdb14")
    subprocess.run([*uv_cmd, "pip", "install", "-q", "--target", str(old), "duckdb==1.4.1"], check=True)

    def run(script: str, args: list[str]) -> list[str]:
        return subprocess.run([sys.executable, "-c", script, *args], check=True, capture_output=True, text=True,
                              env={"PYTHONPATH": str(old), "PATH": "/usr/bin:/bin"}).stdout.split()

    return run


# Files tests keep for a person to look at (the report's screenshots): a fixed folder, printed at the end.
ARTEFACTS = ROOT / "test-artefacts"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name the artefact folders this run wrote (under xdist the workers' prints are not shown)."""
    if ARTEFACTS.is_dir():
        for folder in sorted(p for p in ARTEFACTS.iterdir() if p.is_dir()):
            files = sum(1 for f in folder.rglob("*") if f.is_file())
            terminalreporter.write_line(f"test artefacts: {folder} ({files} files)")


@pytest.fixture(scope="session")
def xs_night(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """One full night (extract to publish) of the XS sample, published; returns the warehouse.

    The night of tests/transform/mart_digests.py, shared by the tests that read a published warehouse (the
    mart digests, the semantic layer, the report in the browser, the Fivetran, HubSpot and renamed-stage
    comparisons, the DuckDB reference of the Postgres tests, and tests/test_end_to_end_xs.py, which work on
    copies of its warehouse). A night is most of a minute of CPU, little less at XS than at S: sharing one saves more than
    shrinking several. Built once per test session: under xdist
    the first worker to ask builds it in the session's shared temp folder while the others wait on a file
    lock (a night is minutes of CPU on 2 cores). Read it, never write to it.
    """
    import fcntl

    from tests.transform.mart_digests import build_sample_night

    if worker_id == "master":
        return build_sample_night(tmp_path_factory.mktemp("xs_night"))
    shared = tmp_path_factory.getbasetemp().parent / "xs_night"
    shared.mkdir(exist_ok=True)
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared / "warehouse.txt"
        if done.exists():
            return Path(done.read_text(encoding="utf-8"))
        warehouse = build_sample_night(shared / "night")
        done.write_text(str(warehouse), encoding="utf-8")
        return warehouse


USERS = [
    {"Id": "005A", "Name": "Ada Manager", "Email": "ada@example.com", "ManagerId": "", "UserRoleId": "00E1",
     "Division": "EMEA", "Department": "SMB", "IsActive": "true", "CreatedDate": "2022-01-03T09:00:00.000Z"},
    {"Id": "005B", "Name": "Bob Rep", "Email": "bob@example.com", "ManagerId": "005A", "UserRoleId": "00E2",
     "Division": "EMEA", "Department": "SMB", "IsActive": "true", "CreatedDate": "2022-02-01T09:00:00.000Z"},
    {"Id": "005C", "Name": "Cy Leaver", "Email": "cy@example.com", "ManagerId": "005A", "UserRoleId": "00E2",
     "Division": "EMEA", "Department": "SMB", "IsActive": "false", "CreatedDate": "2022-02-01T09:00:00.000Z"},
]
ACCOUNTS = [
    {"Id": "001A", "Name": "Acme", "Industry": "Retail", "NumberOfEmployees": "150", "AnnualRevenue": "1000000",
     "BillingCountry": "Germany", "ParentId": "", "OwnerId": "005B", "Type": "Customer", "Tier__c": "Gold"},
    {"Id": "001B", "Name": "Globex", "Industry": "Energy", "NumberOfEmployees": "5000", "AnnualRevenue": "90000000",
     "BillingCountry": "France", "ParentId": "", "OwnerId": "005C", "Type": "Prospect", "Tier__c": ""},
]


def _opp(id_, owner, account, stage, amount, close, created, closed, won, prob, currency="USD"):
    return {"Id": id_, "AccountId": account, "OwnerId": owner, "Name": f"Deal {id_}", "StageName": stage,
            "Amount": amount, "Probability": prob, "ForecastCategoryName": "Closed" if closed else "Pipeline",
            "CloseDate": close, "CreatedDate": created, "IsClosed": closed, "IsWon": won, "IsDeleted": "false",
            "Type": "New Business", "LeadSource": "Web", "CurrencyIsoCode": currency,
            "LastModifiedDate": "2026-10-30T10:00:00.000Z", "Competitor__c": "Initech"}


OPPORTUNITIES = [
    _opp("006A", "005B", "001A", "Closed Won", "1000.00", "2026-09-10", "2026-08-01T10:00:00.000Z", "true", "true", "100"),
    _opp("006B", "005B", "001A", "Closed Lost", "500.00", "2026-09-20", "2026-08-05T10:00:00.000Z", "true", "false", "0"),
    _opp("006C", "005B", "", "Qualification", "2000.00", "2026-12-01", "2026-09-01T10:00:00.000Z", "false", "false",
         "20"),
    _opp("006D", "005C", "001B", "Closed Won", "3000.00", "2026-10-05", "2026-06-01T10:00:00.000Z", "true", "true",
         "100", "EUR"),
]
QUOTAS = [
    {"owner_id": "005B", "period_start": "2026-09-01", "quota_amount": "2000"},
    {"owner_id": "005B", "period_start": "2026-10-01", "quota_amount": "2000"},
    {"owner_id": "005C", "period_start": "2026-10-01", "quota_amount": "0"},
]


def write_csv(path: Path, rows: list[dict], fieldnames: list[str] | None = None) -> Path:
    fieldnames = fieldnames or list(rows[0])
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fieldnames)
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture
def tiny_exports(tmp_path: Path) -> Path:
    """Only the required files: Opportunity, User, Account, quotas."""
    d = tmp_path / "exports"
    d.mkdir()
    write_csv(d / "User.csv", USERS)
    write_csv(d / "Account.csv", ACCOUNTS)
    write_csv(d / "Opportunity.csv", OPPORTUNITIES)
    write_csv(d / "quotas.csv", QUOTAS)
    return d
