"""docker-compose.yml: valid Compose, healthy, secret-free, documented in .env.example (fast, no Docker needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA_FILE = Path(__file__).with_name("compose-spec.schema.json")

AIRFLOW_SERVICES = {"api-server", "scheduler", "dag-processor", "triggerer"}
ONE_SHOT_SERVICES = {"airflow-init"}
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; $${...} is an escaped literal.
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
# Names of values that are secrets (not e.g. ..._PASSWORDS_FILE, a path).
SECRET_KEY_NAME = re.compile(r"(PASSWORD|SECRET|SECRET_KEY|FERNET_KEY|TOKEN|PRIVATE_KEY|API_KEY)$", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _strings(node, path=()):
    """Every (path, string) in the parsed file (comments are gone; merge keys are resolved by the parser)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, (*path, str(k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, (*path, str(i)))
    elif isinstance(node, str):
        yield path, node


def _env_items(service: dict):
    env = service.get("environment") or {}
    if isinstance(env, list):
        return [tuple(e.split("=", 1)) if "=" in e else (e, None) for e in env]
    return list(env.items())


def _env_example_names() -> set[str]:
    names = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(line.split("=", 1)[0].strip())
    return names


def _long_running(services: dict) -> dict:
    return {name: s for name, s in services.items() if name not in ONE_SHOT_SERVICES}


def test_valid_against_compose_spec_schema(compose):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_expected_services_and_profiles(services):
    assert AIRFLOW_SERVICES | ONE_SHOT_SERVICES | {"postgres"} <= set(services)
    for name in AIRFLOW_SERVICES | ONE_SHOT_SERVICES | {"postgres"}:
        assert "profiles" not in services[name], f"{name} must run without a profile"
    assert services["postgres"]["image"].startswith("postgres:15")
    celery = {name for name, s in services.items() if "celery" in s.get("profiles", [])}
    assert "redis" in celery
    workers = [name for name in celery if "worker" in " ".join(services[name].get("command", []))]
    assert workers, "the celery profile needs at least one celery worker"
    for name in workers:
        assert dict(_env_items(services[name]))["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_local_executor_by_default(services):
    for name in AIRFLOW_SERVICES:
        value = dict(_env_items(services[name]))["AIRFLOW__CORE__EXECUTOR"]
        m = INTERPOLATION.fullmatch(value)
        default = m.group(3) if m else value
        assert default == "LocalExecutor", f"{name}: {value}"


def test_service_commands(services):
    assert services["api-server"]["command"][:2] == ["airflow", "api-server"]
    assert services["scheduler"]["command"] == ["airflow", "scheduler"]
    assert services["dag-processor"]["command"] == ["airflow", "dag-processor"]
    assert services["triggerer"]["command"] == ["airflow", "triggerer"]
    init_script = services["airflow-init"]["command"][-1].replace("/opt/salesos/", "")
    text = (ROOT / init_script).read_text()
    assert "airflow db migrate" in text
    assert 'airflow pools set duckdb_writer 1 "DuckDB allows one writing process"' in text
    for name in AIRFLOW_SERVICES:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_long_running_service_has_a_healthcheck(services):
    for name, service in _long_running(services).items():
        check = service.get("healthcheck")
        assert check and not check.get("disable") and check.get("test"), f"{name} has no healthcheck"
    tests = {name: " ".join(s["healthcheck"]["test"]) for name, s in _long_running(services).items()}
    assert "/api/v2/monitor/health" in tests["api-server"]
    assert "8974/health" in tests["scheduler"] or "SchedulerJob" in tests["scheduler"]
    assert "DagProcessorJob" in tests["dag-processor"]
    assert "TriggererJob" in tests["triggerer"]
    assert "pg_isready" in tests["postgres"]
    assert "redis-cli ping" in tests["redis"]


def test_no_literal_secrets(compose):
    offenders = []
    for path, value in _strings(compose):
        # environment entries whose name looks secret must be pure interpolation
        if "environment" in path and SECRET_KEY_NAME.search(path[-1]):
            if not INTERPOLATION.fullmatch(value):
                offenders.append(("/".join(path), value))
        # credentials inside URLs: scheme://user:password@host
        for m in re.finditer(r"://([^:/@\s]+):([^@\s]+)@", value):
            if not INTERPOLATION.fullmatch(m.group(2)):
                offenders.append(("/".join(path), value))
    assert not offenders, offenders
    text = COMPOSE_FILE.read_text()
    assert not re.search(r"(?i)(password|secret|fernet)[\w]*\s*[:=]\s*['\"]?[A-Za-z0-9+/=_-]{8,}['\"]?\s*$", text, re.M)


def test_required_secrets_are_marked_required(compose):
    required = {m.group(1) for _, v in _strings(compose) for m in INTERPOLATION.finditer(v) if m.group(2) in (":?", "?")}
    assert {"POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_JWT_SECRET",
            "AIRFLOW_ADMIN_PASSWORD"} <= required


def test_every_variable_is_in_env_example(compose):
    used = {m.group(1) for _, v in _strings(compose) for m in INTERPOLATION.finditer(v)}
    missing = used - _env_example_names()
    assert not missing, f"add to .env.example: {sorted(missing)}"
    for name in ("AIRFLOW_UID", "POSTGRES_PASSWORD", "SALESOS_EXPORTS", "SALESOS_WAREHOUSE", "SALESOS_DATA_DIR",
                 "SALESOS_SETTINGS", "SALESOS_DBT_TARGET", "AIRFLOW_ADMIN_USERNAME", "AIRFLOW_ADMIN_PASSWORD"):
        assert name in used, f"{name} is not used by docker-compose.yml"


def test_env_example_holds_no_secret():
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            if SECRET_KEY_NAME.search(name):
                assert value.strip() == "", f".env.example must leave {name} empty"


def test_volumes_mount_the_project_folders(services):
    wanted = {"dags", "dbt_project", "config", "expectations", "landing", "data"}
    for name in AIRFLOW_SERVICES | ONE_SHOT_SERVICES:
        targets = set()
        for volume in services[name]["volumes"]:
            if isinstance(volume, dict):
                source, target = volume.get("source", ""), volume["target"]
            else:
                spec = re.sub(r":(ro|rw|z|Z)$", "", volume)
                source, _, target = spec.rpartition(":")
            if source.startswith(("./", "${")):  # a bind mount of a host folder, not a named volume
                targets.add(target.rstrip("/").split("/")[-1])
        assert wanted <= targets, f"{name} lacks {wanted - targets}"


def test_execution_api_reaches_the_api_server(services):
    env = dict(_env_items(services["scheduler"]))
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://api-server:8080/execution")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/salesos/dags"


def test_image_is_built_from_the_lock_file(services):
    for name in AIRFLOW_SERVICES | ONE_SHOT_SERVICES:
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile"
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.M)
    assert "uv sync --frozen" in dockerfile
    assert "COPY pyproject.toml uv.lock" in dockerfile
