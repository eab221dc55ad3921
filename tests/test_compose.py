"""docker-compose.yml stays true to the native stack."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from eventpipe.cli import PROCESSES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
STACK = (ROOT / "stack" / "stack.sh").read_text()
# What `eventpipe run` starts natively besides the worker and the API, a service each here.
APP_PROCESSES = set(PROCESSES) - {"worker", "api"}


def _stack_value(name: str) -> str:
    match = re.search(rf"^{name}=(\S+)", STACK, re.MULTILINE)
    assert match, name
    return match.group(1)


def test_compose_has_the_native_services_at_the_native_versions_and_ports() -> None:
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert set(services) == {"kafka", "schema-registry", "postgres", "redis", "azurite",
                             "worker", "api", *APP_PROCESSES}
    assert services["kafka"]["image"] == f"apache/kafka:{_stack_value('KAFKA_VERSION')}"
    assert services["schema-registry"]["image"] == (
        f"apicurio/apicurio-registry:{_stack_value('APICURIO_VERSION')}")
    published = {name: s.get("ports", []) for name, s in services.items()}
    assert f"127.0.0.1:{_stack_value('KAFKA_PORT')}:19092" in published["kafka"]
    assert any(p.startswith(f"127.0.0.1:{_stack_value('REGISTRY_PORT')}:")
               for p in published["schema-registry"])
    assert any(p.startswith(f"127.0.0.1:{_stack_value('PG_PORT')}:") for p in published["postgres"])
    assert any(p.startswith(f"127.0.0.1:{_stack_value('REDIS_PORT')}:") for p in published["redis"])
    assert services["azurite"]["image"] == (
        f"mcr.microsoft.com/azure-storage/azurite:{_stack_value('AZURITE_VERSION')}")
    assert f"127.0.0.1:{_stack_value('AZURITE_PORT')}:10000" in published["azurite"]
    assert "azurite-blob" in services["azurite"]["command"]  # the blob service only, as natively
    for app in ("worker", "api", *APP_PROCESSES):
        assert services[app]["command"][0] == app
        env = services[app]["environment"]
        assert {"KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL", "DATABASE_URL",
                "REDIS_URL", "AZURE_STORAGE_CONNECTION_STRING", "BLOB_DIR"} <= set(env)
        assert env["SCHEMA_REGISTRY_URL"].endswith("/apis/ccompat/v7")


def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_config_accepts_the_file() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("no `docker compose` plugin or docker-compose here to run `config`")
    result = subprocess.run([*command, "-f", str(COMPOSE), "config", "--quiet"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_the_registry_keeps_schemas_in_postgresql_in_both_stacks() -> None:
    registry = yaml.safe_load(COMPOSE.read_text())["services"]["schema-registry"]["environment"]
    assert registry["APICURIO_STORAGE_SQL_KIND"] == "postgresql"
    assert registry["APICURIO_DATASOURCE_URL"].endswith("/registry")
    assert "-Dapicurio.storage.sql.kind=postgresql" in STACK
    assert "CREATE DATABASE registry" in (ROOT / "stack/compose/init-registry.sql").read_text()
