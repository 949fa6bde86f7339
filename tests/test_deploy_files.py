"""docker-compose.yml and the Dockerfile, checked as far as is possible without a Docker engine."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from workflows import search_attributes as sa

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_the_whole_stack():
    """PostgreSQL, Temporal on it, the Web UI, the attribute registration and the worker."""
    services = COMPOSE["services"]
    assert set(services) == {
        "postgresql",
        "temporal",
        "temporal-admin-tools",
        "temporal-ui",
        "worker",
    }
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    assert services["temporal"]["environment"]["POSTGRES_SEEDS"] == "postgresql"
    assert services["worker"]["depends_on"]["temporal-admin-tools"]["condition"] == (
        "service_completed_successfully"
    )
    for volume in services["postgresql"]["volumes"]:
        host = volume.split(":")[0]
        if host.startswith("./"):
            assert (ROOT / host).exists(), host


def test_worker_points_at_temporal_and_postgresql():
    """The worker's settings name the Temporal service and a PostgreSQL store it can reach."""
    env = COMPOSE["services"]["worker"]["environment"]
    assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert env["REDIALER_DATABASE_URL"].startswith("postgresql://redialer:")
    assert "@postgresql:5432/redialer" in env["REDIALER_DATABASE_URL"]
    init = (ROOT / "deploy" / "postgres-init.sql").read_text()
    assert "CREATE DATABASE redialer" in init and "CREATE ROLE redialer" in init


def test_every_search_attribute_is_registered_with_its_type():
    """Adding a search attribute to the workflows without registering it fails here."""
    command = " ".join(COMPOSE["services"]["temporal-admin-tools"]["command"])
    registered: dict[str, str] = {}
    for call in re.findall(r"search-attribute create(.*?);", command):
        kind = re.search(r"--type (\w+)", call).group(1)  # type: ignore[union-attr]
        for name in re.findall(r"--name (\w+)", call):
            registered[name] = kind
    expected = {k.name: ("Int" if k.name == "AttemptCount" else "Keyword") for k in sa.ALL}
    assert registered == expected


def test_dockerfile_installs_the_package_and_runs_a_worker():
    """The image installs redialer with its dependencies and starts `redialer worker`."""
    text = (ROOT / "Dockerfile").read_text()
    assert "pip install ." in text
    assert 'CMD ["redialer", "worker"]' in text
    for package in ("redialer", "workflows", "activities", "starter"):
        assert f"COPY {package} ./{package}" in text
