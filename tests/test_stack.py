"""The native stack's script: a second `up` reuses what runs; `status` and `env` tell the truth."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from eventpipe.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
OWN = ("KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL", "DATABASE_URL", "REDIS_URL")


def _stack(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in OWN} | env
    return subprocess.run(["bash", "stack/stack.sh", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def own_stack(stack: Settings) -> None:
    if any(os.environ.get(k) and os.environ[k] != getattr(stack, k.lower()) for k in OWN):
        pytest.skip("the suite runs against external services")


def test_up_again_reuses_every_running_service(own_stack: None) -> None:
    result = _stack("up")
    assert result.returncode == 0, result.stderr
    for name in ("postgres", "redis", "kafka", "registry", "azurite"):
        assert f"{name}: already running" in result.stderr


def test_status_reports_each_service_running(own_stack: None) -> None:
    lines = _stack("status").stdout.splitlines()
    assert {line.split()[0]: line.split()[1] for line in lines} == {
        "postgres": "running", "redis": "running", "kafka": "running", "registry": "running",
        "azurite": "running"}


def test_env_prints_the_settings_the_suite_uses(stack: Settings) -> None:
    exports = dict(line.removeprefix("export ").split("=", 1)
                   for line in _stack("env").stdout.splitlines())
    assert exports["KAFKA_BOOTSTRAP_SERVERS"] == stack.kafka_bootstrap_servers
    assert exports["SCHEMA_REGISTRY_URL"] == stack.schema_registry_url
    assert exports["DATABASE_URL"] == stack.database_url
    assert exports["REDIS_URL"] == stack.redis_url
    assert exports["API_URL"].startswith("http://127.0.0.1:")
    # (%q-quoted: a shell reads it back as the connection string)
    azurite = shlex.split(exports["AZURE_STORAGE_CONNECTION_STRING"])[0]
    assert "AccountName=devstoreaccount1;" in azurite
    assert "BlobEndpoint=http://127.0.0.1:" in azurite


def test_a_variable_naming_another_service_makes_it_external(own_stack: None) -> None:
    lines = _stack("status", REDIS_URL="redis://127.0.0.1:1/0").stdout.splitlines()
    redis_line = next(line for line in lines if line.startswith("redis"))
    assert redis_line.split()[1:3] == ["external", "redis://127.0.0.1:1/0"]
    assert redis_line.endswith("(not answering)")
