"""docker-compose.yml and the Dockerfile, checked as far as is possible without a Docker engine."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml
from temporalio.api.enums.v1 import IndexedValueType

from workflows import search_attributes as sa

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def cli_type(value_type: IndexedValueType.ValueType) -> str:
    """`INDEXED_VALUE_TYPE_KEYWORD_LIST` -> `KeywordList`, the spelling `temporal` accepts."""
    name = IndexedValueType.Name(value_type).removeprefix("INDEXED_VALUE_TYPE_")
    return "".join(part.capitalize() for part in name.split("_"))


def registered_attributes(command: str) -> dict[str, str]:
    """Name -> type for every `search-attribute create` in a shell command (name/type pairs)."""
    registered: dict[str, str] = {}
    for call in command.split("search-attribute create")[1:]:
        tokens = shlex.split(call.split(";")[0])
        for i, token in enumerate(tokens):
            if token == "--name":
                assert tokens[i + 2] == "--type", f"--name {tokens[i + 1]} has no --type after it"
                registered[tokens[i + 1]] = tokens[i + 3]
    return registered


def test_compose_has_its_services():
    """PostgreSQL, Temporal, the attribute registration, the Web UI, the store's migrations, the
    worker and the HTTP service."""
    assert set(SERVICES) == {
        "postgresql",
        "temporal",
        "temporal-admin-tools",
        "temporal-ui",
        "store-migrations",
        "worker",
        "api",
    }


def test_workers_start_on_a_migrated_store_and_outwait_their_calls_on_stop():
    """The store is upgraded before any worker starts, and Docker waits longer than the worker's
    graceful shutdown (the longest call) before it kills one."""
    migrations = SERVICES["store-migrations"]
    assert migrations["command"] == ["redialer", "db", "upgrade"]
    assert (
        migrations["environment"]["REDIALER_DATABASE_URL"]
        == (SERVICES["worker"]["environment"]["REDIALER_DATABASE_URL"])
    )
    assert SERVICES["worker"]["depends_on"]["store-migrations"]["condition"] == (
        "service_completed_successfully"
    )
    grace = int(SERVICES["worker"]["environment"]["REDIALER_GRACEFUL_SHUTDOWN"])
    assert int(SERVICES["worker"]["stop_grace_period"].removesuffix("s")) > grace


def test_services_start_in_order():
    """Temporal waits for a healthy PostgreSQL, workers wait for the registered attributes."""
    assert SERVICES["postgresql"]["healthcheck"]["test"][-1].startswith("pg_isready")
    assert SERVICES["temporal"]["depends_on"]["postgresql"]["condition"] == "service_healthy"
    assert SERVICES["temporal"]["environment"]["DB"] == "postgres12"
    assert SERVICES["temporal"]["environment"]["POSTGRES_SEEDS"] == "postgresql"
    assert SERVICES["temporal-admin-tools"]["restart"] == "no"
    assert SERVICES["worker"]["depends_on"]["temporal-admin-tools"]["condition"] == (
        "service_completed_successfully"
    )


def test_postgres_init_script_creates_the_redialer_database():
    """The script mounted into /docker-entrypoint-initdb.d/ exists and creates role and database."""
    mounts = [v for v in SERVICES["postgresql"]["volumes"] if "/docker-entrypoint-initdb.d/" in v]
    assert mounts == ["./deploy/postgres-init.sql:/docker-entrypoint-initdb.d/10-redialer.sql:ro"]
    init = (ROOT / "deploy" / "postgres-init.sql").read_text()
    assert "CREATE ROLE redialer" in init and "CREATE DATABASE redialer" in init


def test_worker_points_at_temporal_and_postgresql():
    """The worker's environment names the Temporal service and the PostgreSQL store."""
    env = SERVICES["worker"]["environment"]
    assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert env["REDIALER_DATABASE_URL"] == (
        "postgresql://redialer:redialer@postgresql:5432/redialer"
    )
    assert env["REDIALER_LOG_FORMAT"] == "json"


def test_api_reaches_temporal_and_needs_keys():
    """The API starts campaigns (Temporal), refuses to come up without keys, and is healthy only
    when Temporal and the store answer."""
    api = SERVICES["api"]
    env = api["environment"]
    assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert (
        env["REDIALER_DATABASE_URL"] == SERVICES["worker"]["environment"]["REDIALER_DATABASE_URL"]
    )
    assert env["REDIALER_API_KEYS"].startswith("${REDIALER_API_KEYS:?")
    assert "/readyz" in " ".join(api["healthcheck"]["test"])


def test_worker_can_be_scaled():
    """No replicas, container name or host port on the worker, so `--scale worker=N` works."""
    worker = SERVICES["worker"]
    assert worker["build"] == "."
    assert not {"deploy", "container_name", "ports"} & set(worker)


def test_every_search_attribute_is_registered_with_its_type():
    """Adding a search attribute to the workflows without registering it fails here."""
    command = " ".join(SERVICES["temporal-admin-tools"]["command"])
    assert "--address temporal:7233" in command
    expected = {key.name: cli_type(key.indexed_value_type) for key in sa.ALL}
    assert registered_attributes(command) == expected


def test_dockerfile_installs_the_package_and_runs_a_worker():
    """The image installs redialer as a non-root user and starts `redialer worker`."""
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("# ") and "FROM python:3.11-slim" in text
    assert "COPY . ." in text
    assert "pip install --no-cache-dir ." in text
    assert "USER redialer" in text
    assert text.rstrip().endswith('CMD ["redialer", "worker"]')
    ignored = (ROOT / ".dockerignore").read_text().split()
    for needed in ("pyproject.toml", "README.md", "redialer", "workflows", "activities", "starter"):
        assert needed not in ignored, needed


def test_compose_server_keeps_the_dev_servers_fairness():
    """The compose server reads the dynamic config redialer relies on (fairness keys per
    campaign), with the same values `redialer server` passes to the dev server."""
    from starter.server import FAIRNESS

    temporal = SERVICES["temporal"]
    inside = "/etc/temporal/" + temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in temporal["volumes"]}
    config = yaml.safe_load((ROOT / mounts[inside]).read_text())
    wanted = dict(v.split("=") for v in FAIRNESS[1::2])
    assert {key: str(config[key][0]["value"]).lower() for key in wanted} == wanted
