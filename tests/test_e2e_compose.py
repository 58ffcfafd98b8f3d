"""docker-compose.yml and the Dockerfile refer only to commands, settings and files that exist
(docker itself cannot run here, so the files are parsed and checked against the code)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.cli import build_parser
from service.config import Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_services_start_in_order_with_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "api", "worker", "ray-head", "ray-worker"}
    ray_nodes = {name for name, s in services.items() if s.get("profiles") == ["ray"]}
    assert ray_nodes == {"ray-head", "ray-worker"}, "the Ray cluster starts only with --profile ray"
    assert services["worker"]["depends_on"]["ray-head"]["required"] is False
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["api"]
    assert "/health" in " ".join(services["api"]["healthcheck"]["test"])
    for service in services.values():
        for dependency in service.get("depends_on", {}):
            assert dependency in services


def test_every_hwnas_command_parses(compose: dict[str, Any]) -> None:
    commands = [s["command"] for s in compose["services"].values() if "command" in s]
    dockerfile_cmd = re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.M)
    assert dockerfile_cmd is not None
    commands.append(yaml.safe_load(dockerfile_cmd.group(1)))
    assert {tuple(c[:2]) for c in commands} >= {
        ("hwnas", "db"),
        ("hwnas", "serve"),
        ("hwnas", "worker"),
    }
    for command in commands:
        if command[0] == "ray":  # the Ray nodes of --profile ray
            assert command[1] == "start" and "--block" in command
            continue
        assert command[0] == "hwnas"
        build_parser().parse_args(command[1:])  # SystemExit on an unknown command or flag


def test_every_hwnas_env_var_is_a_setting(compose: dict[str, Any]) -> None:
    settings = set(Settings.model_fields)
    used = set()
    for service in compose["services"].values():
        for key, value in service.get("environment", {}).items():
            if key.startswith("HWNAS_"):
                used.add(key)
                assert key.removeprefix("HWNAS_").lower() in settings, key
                value = re.sub(r"\$\{\w+:-(.*)\}", r"\1", value)  # compose's default
                Settings(**{key.removeprefix("HWNAS_").lower(): value})  # values validate
    assert {"HWNAS_DATABASE_URL", "HWNAS_DATA_DIR"} <= used
    url = compose["services"]["api"]["environment"]["HWNAS_DATABASE_URL"]
    postgres_env = compose["services"]["postgres"]["environment"]
    user, password = postgres_env["POSTGRES_USER"], postgres_env["POSTGRES_PASSWORD"]
    assert (
        url == f"postgresql+psycopg://{user}:{password}@postgres:5432/{postgres_env['POSTGRES_DB']}"
    )


def test_dockerfile_copies_existing_paths() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
