"""docker-compose.yml, checked as far as this machine can without a Docker engine: a real compose
implementation validates it, every command of a service built from the project's image exists in the
image's environment, and every file mounted from the repository into a service (the monitoring
configuration of the upstream Prometheus and Grafana images) exists."""

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
PROMETHEUS_CONFIG = REPOSITORY_ROOT / "mlops_assets" / "deploy" / "observability" / "prometheus.yml"
IMAGE_ROOT = "/app/"  # the Dockerfile's WORKDIR: paths under it are paths in this repository
PROJECT_IMAGE = "mlops-assets:latest"
DOCUMENTED_PORTS = {"3000", "5000", "8000", "8080", "9090", "3001"}
# The monitoring section is written apart, to be folded into the README.
DOCUMENTATION = (REPOSITORY_ROOT / "README.md", REPOSITORY_ROOT / "mlops_assets" / "deploy" / "observability" / "README.md")


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
    assert services == {
        "postgres", "mlflow", "code", "webserver", "daemon", "serving", "spark-master", "spark-worker",
        "prometheus", "pushgateway", "grafana",
    }  # fmt: skip
    assert resolved_compose["services"]["postgres"]["healthcheck"]["test"]
    assert set(resolved_compose["volumes"]) == {"postgres", "mlartifacts", "data", "prometheus", "pushgateway", "grafana"}


def test_the_pipelines_push_to_the_pushgateway_prometheus_scrapes(resolved_compose):
    services = resolved_compose["services"]
    for name in ("code", "daemon"):
        assert services[name]["environment"]["MLOPS_PUSHGATEWAY_URL"] == "http://pushgateway:9091", name
    scraped = {
        target
        for job in yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert {"serving:8000", "pushgateway:9091"} <= scraped
    assert _commands(services["serving"]) == [["python", "-m", "serving", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]]


def test_every_file_mounted_from_the_repository_exists():
    mounted = 0
    for name, service in yaml.safe_load(COMPOSE_FILE.read_text())["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPOSITORY_ROOT / source).exists(), f"{name}: {source} missing"
                mounted += 1
    assert mounted >= 4  # Prometheus's config and rules, Grafana's provisioning and dashboards


def test_every_command_exists_in_the_image_environment(resolved_compose):
    bin_dir = Path(sys.executable).parent
    for name, service in resolved_compose["services"].items():
        if service.get("image") != PROJECT_IMAGE:
            continue  # an upstream image's command is its own
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
    documentation = "".join(path.read_text() for path in DOCUMENTATION if path.is_file())
    for port in DOCUMENTED_PORTS:
        assert f":{port}" in documentation, f"port {port} is published but not documented in the README"
