"""The deployment files say what they promise (issue 10): compose.yaml is valid Compose (the specification's own
JSON Schema) with PostgreSQL 16 on a named volume and a healthcheck, a one-shot migrate service and two replicas;
.env.example lists every variable the process reads; the Dockerfile has its base as an argument, two stages, a
user that is not root and a HEALTHCHECK on /healthz."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# Read by others than Settings: the log format (bot/, issue 10's operations part), the image's entrypoint, compose.
OTHER_VARIABLES = {"MADOGUCHI_LOG_FORMAT", "MADOGUCHI_HOST", "MADOGUCHI_PORT", "MADOGUCHI_MIGRATE",
                   "POSTGRES_PASSWORD", "DATABASE_URL"}


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8")))


def test_compose_yaml_is_valid_compose() -> None:
    schema = json.loads((ROOT / "tests" / "deploy" / "compose-spec.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema).validate(compose())  # raises with the path inside the file on any mistake


def test_compose_runs_postgres_16_a_one_shot_migration_and_two_replicas() -> None:
    services, volumes = compose()["services"], compose()["volumes"]
    postgres, migrate, app = services["postgres"], services["migrate"], services["madoguchi"]
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    named = [v.split(":")[0] for v in postgres["volumes"]]
    assert named == ["pgdata"] and "pgdata" in volumes
    assert migrate["command"] == ["db", "upgrade"] and migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert app["command"] == ["serve"] and app["deploy"]["replicas"] == 2
    assert app["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    for service in (migrate, app):
        assert service["env_file"] == ".env" and service["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://")
        assert service["build"]["args"]["BASE_IMAGE"].startswith("${BASE_IMAGE:-")


def test_env_example_lists_every_variable_the_process_reads() -> None:
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(encoding="utf-8"), re.M))
    read = {str(f.validation_alias) for f in Settings.model_fields.values()}
    assert read <= listed, f"missing from .env.example: {sorted(read - listed)}"
    assert OTHER_VARIABLES <= listed
    assert listed <= read | OTHER_VARIABLES, f"unknown to madoguchi: {sorted(listed - read - OTHER_VARIABLES)}"


def test_the_dockerfile_takes_its_base_and_runs_as_a_user_with_a_healthcheck() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    assert instructions[0] == "ARG BASE_IMAGE=python:3.11-slim"
    froms = [line for line in instructions if line.startswith("FROM ")]
    assert froms == ["FROM ${BASE_IMAGE} AS builder", "FROM ${BASE_IMAGE}"]
    runtime = instructions[instructions.index(froms[1]):]
    users = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert any(line.startswith("HEALTHCHECK ") for line in runtime)
    assert 'PATH = "/healthz"' in (ROOT / "docker" / "healthcheck.py").read_text(encoding="utf-8")
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "*" in ignored and "**/.env" in ignored  # the context holds only what the image needs, never .env
