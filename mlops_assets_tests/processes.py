"""Processes a test starts, and stops: free ports, waiting for readiness, stopping a process tree."""

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(ready: Callable[[], bool], *, timeout: float, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before it was ready")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what} was not ready after {timeout:.0f} s")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


def start(command: list[str], *, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """Start `command` in its own process group, so that stopping it also stops what it spawned."""
    handle = log.open("wb")
    return subprocess.Popen(
        command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
    )


def stop(process: subprocess.Popen, *, grace: float = 15.0) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)


def require_debian_command(command: str, package: str) -> str:
    """The path of `command`, installing Debian's `package` first when it is missing and this user can.

    The test suite runs from one command on a fresh machine: tools from Debian's packages are
    installed on first use rather than listed as manual steps."""
    found = shutil.which(command)
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(f"`{command}` is missing: install Debian's {package} package (apt-get install {package})")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=environment, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, env=environment, capture_output=True)
    found = shutil.which(command)
    if not found:
        pytest.fail(f"installing {package} did not provide `{command}`")
    return found
