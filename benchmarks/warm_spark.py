"""The platform's warm Spark runtime for a benchmark: started as `mlops-assets up` starts it, stopped after."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY_ROOT))


@contextmanager
def warm_runtime(state_dir: Path) -> Iterator[tuple[str, int]]:
    """The address of a local Spark Connect server, as `mlops-assets up` starts it, and its pid."""
    from mlops_assets.platform.resources.spark import answers
    from mlops_assets.platform.spark_connect import server_command, server_environment, warm_runtime_address
    from mlops_assets.settings import Settings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings.from_env({"MLOPS_STATE_DIR": str(state_dir)})
    with (state_dir / "warm-spark.log").open("wb") as log:
        server = subprocess.Popen(
            server_command(settings, port), env={**os.environ, **server_environment()}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    address = warm_runtime_address(port)
    try:
        deadline = time.monotonic() + 180
        while not answers(address):
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the warm Spark runtime did not start: {state_dir / 'warm-spark.log'}")
            time.sleep(0.5)
        yield address, server.pid
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
