"""Run the serving app under uvicorn: `python -m serving --workers 2 --port 8000`.

Compared with calling uvicorn directly this gives the workers a shared runtime folder (so /metrics
adds up all workers and /admin/reload reaches all of them), picks uvloop and httptools, and turns the
per-request access log off (it costs more than a prediction).
"""

import argparse
import os
import shutil
import tempfile


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes; one per core is best")
    parser.add_argument("--access-log", action="store_true", help="log every request (slow)")
    arguments = parser.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    own_runtime_dir = "MLOPS_SERVING_RUNTIME_DIR" not in os.environ
    if own_runtime_dir:
        os.environ["MLOPS_SERVING_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="mlops-serving-")
    else:
        # Counts of the workers of an earlier run would be added to this run's (prometheus-client's
        # multiprocess files outlive their processes on purpose).
        shutil.rmtree(os.path.join(os.environ["MLOPS_SERVING_RUNTIME_DIR"], "metrics"), ignore_errors=True)

    import uvicorn

    try:
        uvicorn.run(
            "serving.app:app",
            host=arguments.host,
            port=arguments.port,
            workers=arguments.workers,
            loop="uvloop",
            http="httptools",
            access_log=arguments.access_log,
            timeout_graceful_shutdown=10,
        )
    finally:
        if own_runtime_dir:
            shutil.rmtree(os.environ["MLOPS_SERVING_RUNTIME_DIR"], ignore_errors=True)


if __name__ == "__main__":
    main()
