"""docker-compose.yml, checked as far as this machine can without a Docker engine: a real compose
implementation validates it, and every service's command exists in the image's environment."""

import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops_assets_tests.conftest import REPOSITORY_ROOT
from mlops_assets_tests.processes import require_debian_command

COMPOSE_FILE = REPOSITORY_ROOT / "docker-compose.yml"
IMAGE_ROOT = "/app/"  # the Dockerfile's WORKDIR: paths under it are paths in this repository
DOCUMENTED_PORTS = {"3000", "5000", "8000", "8080"}


@pytest.fixture(scope="module")
def resolved_compose(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`docker-compose config` on the committed file, with `.env` made from `.env.example` as the README says."""
    compose = require_debian_command("docker-compose", "docker-compose")
    folder = tmp_path_factory.mktemp("compose")
    shutil.copy(COMPOSE_FILE, folder / "docker-compose.yml")
    shutil.copy(REPOSITORY_ROOT / ".env.example", folder / ".env")
    completed = subprocess.run([compose, "config"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    return yaml.safe_load(completed.stdout)


def _commands(service: dict) -> list[list[str]]:
    """The command lines a service runs, with `sh -c "a && exec b"` split into a and b."""
    command = service.get("command")
    if command is None:
        return []
    words = command if isinstance(command, list) else shlex.split(command)
    if words[:2] == ["sh", "-c"]:
        return [shlex.split(part.replace("exec ", "", 1)) for part in re.split(r"&&|;", words[2])]
    return [words]


def test_compose_validates_and_runs_every_service_of_the_profile(resolved_compose):
    services = set(resolved_compose["services"])
    assert services == {"postgres", "mlflow", "code", "webserver", "daemon", "serving", "spark-master", "spark-worker"}
    assert resolved_compose["services"]["postgres"]["healthcheck"]["test"]
    assert set(resolved_compose["volumes"]) == {"postgres", "mlartifacts", "data"}


def test_every_command_exists_in_the_image_environment(resolved_compose):
    bin_dir = Path(sys.executable).parent
    for name, service in resolved_compose["services"].items():
        for words in _commands(service):
            executable = words[0]
            if executable == "python":
                module = words[words.index("-m") + 1]
                assert importlib.util.find_spec(module) is not None, f"{name}: no module {module}"
                continue
            assert (bin_dir / executable).exists(), f"{name}: `{executable}` is not installed by the project"
            for word in words:
                if word.startswith(IMAGE_ROOT):
                    assert (REPOSITORY_ROOT / word.removeprefix(IMAGE_ROOT)).exists(), f"{name}: {word} missing"
            for flag in ("--module-name", "-m"):
                if flag in words and executable in ("dagster",):
                    module = words[words.index(flag) + 1]
                    assert importlib.util.find_spec(module) is not None, f"{name}: no module {module}"
            if executable == "uvicorn":
                module = words[1].split(":")[0]
                assert importlib.util.find_spec(module) is not None, f"{name}: no module {module}"


def test_no_secret_is_written_into_the_compose_file():
    text = COMPOSE_FILE.read_text()
    for line in text.splitlines():
        if re.search(r"(PASSWORD|TOKEN|SECRET)\w*\s*:", line):
            assert "${" in line, f"a secret is hard-coded: {line.strip()}"
    assert "change-me" not in text


def test_only_documented_ports_are_published(resolved_compose):
    published = set()
    for service in resolved_compose["services"].values():
        for port in service.get("ports", []):
            published.add(str(port["target"] if isinstance(port, dict) else port).split(":")[-1])
    assert published == DOCUMENTED_PORTS
    readme = (REPOSITORY_ROOT / "README.md").read_text()
    for port in DOCUMENTED_PORTS:
        assert f":{port}" in readme, f"port {port} is published but not documented in the README"
