# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv with uv (installed into .tools/ on first use) from the lock file.

UV_VERSION := 0.13.9
PYTHON ?= python3
UV := .tools/uv/bin/uv
VENV := .venv
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export UV_PYTHON_DOWNLOADS := never
PYTEST_ARGS ?=
# Two pytest workers, one test file each at a time (module fixtures stay in one process): the end-to-end
# runs spend much of their time waiting on subprocesses (dbt, Airflow), so two overlap well on 2 cores.
PYTEST_WORKERS ?= 2

.PHONY: demo test test-fast test-slow test-spark lint digests bench clean

$(UV):
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target .tools/uv "uv==$(UV_VERSION)"

# --compile-bytecode: write every package's .pyc once at install (about 20 s). With PYTHONDONTWRITEBYTECODE set
# (as on our CI machines) Python reads .pyc files but never writes them, so without this each dbt, Airflow and
# GX process compiled its imports from source again: 16.5 s against 7.1 s to import GX, Airflow, dbt and Prophet.
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python 3.11 --compile-bytecode
	@touch $@

demo: $(VENV)/.synced
	$(VENV)/bin/python -m salesos.demo

test: $(VENV)/.synced
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-fast: $(VENV)/.synced
	$(VENV)/bin/pytest -m "not e2e" $(PYTEST_ARGS)

# The exhaustive forms of tests whose `make test` run checks a fixed representative part (marked slow), e.g.
# the kill before every file operation of a publish (tests/test_fault_injection.py), not the first and last of each kind.
test-slow: $(VENV)/.synced
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile -m slow --run-slow $(PYTEST_ARGS)

# The whole-night tests on a local Spark (tests/warehouse/test_spark.py; 40-60 min on 2 cores at a load of 15-25,
# benchmarks/results.md, 2026-12-07: far over CI's budget, so not in `make test`).
test-spark: $(VENV)/.synced
	$(VENV)/bin/pytest -m spark --run-spark-nights tests/warehouse/test_spark.py $(PYTEST_ARGS)

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check .
	$(VENV)/bin/sqlfluff lint dbt_project/models

# Re-record the digests of every mart and forecast table of the XS sample night (tests/transform/test_mart_digests.py)
# after a change that alters a table on purpose; say in the commit which tables changed and why.
digests: $(VENV)/.synced
	$(VENV)/bin/python -m tests.transform.mart_digests

# The whole benchmark of issue 7 (about 3 hours on 2 cores, 45 GB of disk for L): full nights at S and M
# with the hand-written SQL floor, a mid-month incremental night at M, and every step at L. Results as
# markdown (and JSON) in $(BENCH_OUT); the recorded ones are benchmarks/results.md.
BENCH_OUT ?= bench-results
bench: $(VENV)/.synced
	mkdir -p $(BENCH_OUT)
	$(VENV)/bin/python benchmarks/nightly.py --scales S M --out $(BENCH_OUT)/full.md
	$(VENV)/bin/python benchmarks/nightly.py --scales M --incremental --as-of 2026-10-29 --out $(BENCH_OUT)/incremental.md
	$(VENV)/bin/python benchmarks/nightly.py --scales L --no-floor --out $(BENCH_OUT)/L.md

clean:
	rm -rf data .airflow dbt_project/target dbt_project/logs
