"""Real Prometheus servers from Debian's packages (`prometheus`, `prometheus-pushgateway`), installed on
first use like every tool the suite needs, started on loopback ports of their own and always stopped."""

import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlops_assets_tests.processes import free_port, http_ok, require_debian_command, start, stop, wait_until


@dataclass(frozen=True)
class PrometheusTools:
    prometheus: str
    promtool: str
    pushgateway: str


# command -> the Debian package that provides it
COMMANDS = {"prometheus": "prometheus", "promtool": "prometheus", "prometheus-pushgateway": "prometheus-pushgateway"}


@pytest.fixture(scope="session")
def prometheus_tools() -> PrometheusTools:
    """The three commands, their packages installed in one apt-get run when any is missing."""
    missing = sorted({package for command, package in COMMANDS.items() if shutil.which(command) is None})
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=environment, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=environment, capture_output=True)
    # Found now, or a failure that names the package to install.
    found = {command: require_debian_command(command, package) for command, package in COMMANDS.items()}
    return PrometheusTools(found["prometheus"], found["promtool"], found["prometheus-pushgateway"])


@dataclass(frozen=True)
class Pushgateway:
    url: str

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            return response.read().decode()


@contextmanager
def running_pushgateway(tools: PrometheusTools, folder: Path) -> Iterator[Pushgateway]:
    """A Pushgateway in memory (Debian's build persists to /var/lib by default), stopped on exit."""
    port = free_port()
    process = start(
        [tools.pushgateway, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="], log=folder / "pushgateway.log"
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(f"{url}/-/ready"), timeout=30, what="the Pushgateway", process=process)
        yield Pushgateway(url)
    finally:
        stop(process)


@pytest.fixture
def pushgateway(prometheus_tools: PrometheusTools, tmp_path: Path) -> Iterator[Pushgateway]:
    """A fresh Pushgateway for one test."""
    with running_pushgateway(prometheus_tools, tmp_path) as gateway:
        yield gateway
