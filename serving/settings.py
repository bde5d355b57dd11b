"""The serving app's configuration, read from the environment on top of the platform's own settings.

Registry, alias and data root come from `mlops_assets.settings.Settings`, and the projects served from
the platform's own list (`MLOPS_PROJECTS`, `MLOPS_EXTRA_PROJECTS`), so the app serves exactly what the
pipeline deploys. The rest tunes the server:

    MLOPS_SERVING_DEFAULT_MODEL            the project POST /predict and /invocations answer for (default
                                           housing); every project also has /models/<project>/...

    MLOPS_SERVING_POLL_SECONDS             how often each worker re-reads the alias (default 30)
    MLOPS_ADMIN_TOKEN                      bearer token for POST /admin/reload; unset = endpoint off
    MLOPS_SERVING_MAX_BATCH_ROWS           most rows one request may carry (default 1000)
    MLOPS_SERVING_MAX_BODY_BYTES           largest request body accepted (default 1 MiB)
    MLOPS_MODEL_NAME                       the registered model served for the default project, when not
                                           the one its project declares (tests, a model under trial)
    MLOPS_PREDICTION_LOG_DIR               where prediction logs live, one folder per registered model
                                           (default <data_root>/prediction_log; a model's: .../<model name>)
    MLOPS_PREDICTION_LOG_FLUSH_SECONDS     how long a prediction may wait in memory (default 1)
    MLOPS_PREDICTION_LOG_MAX_BYTES         disk budget of the log; oldest files go first (default 1 GiB)
    MLOPS_PREDICTION_LOG_MAX_PENDING_ROWS  memory budget; rows beyond it are dropped and counted (default 100,000)
    MLOPS_SERVING_RUNTIME_DIR              a folder the workers of one server share, to add up their
                                           metrics and pass on reload requests; `python -m serving`
                                           creates one, plain `uvicorn` runs each worker on its own
    MLOPS_SERVING_STATE_DIR                what the server keeps across restarts, shared by its workers:
                                           each project's traffic policy (default: `serving` beside the
                                           prediction log folder, <data_root>/serving)
    MLOPS_CHALLENGER_ALIAS                 the alias of the version tried against production in live
                                           traffic (default challenger); no such alias, no challenger
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from mlops_assets.settings import Settings

Number = TypeVar("Number", int, float)
# The project today's clients of POST /predict and /invocations were written for.
DEFAULT_PROJECT = "housing"


@dataclass(frozen=True)
class ServingSettings:
    tracking_uri: str
    # The default project's registered model, when not the one the project declares; None: declared.
    model_name: str | None
    model_alias: str
    # The default model's log folder, when not <prediction_log_root>/<model name>; None: that one.
    prediction_log_dir: Path | None
    poll_seconds: float = 30.0
    admin_token: str | None = None
    max_batch_rows: int = 1000
    max_body_bytes: int = 1 << 20
    prediction_log_flush_seconds: float = 1.0
    prediction_log_max_bytes: int = 1 << 30
    prediction_log_max_pending_rows: int = 100_000
    runtime_dir: Path | None = None
    default_project: str = DEFAULT_PROJECT
    # Every model's log folder is <root>/<registered model name>; None: the default model's folder's parent.
    prediction_log_root: Path | None = None
    # Survives restarts (unlike runtime_dir); None: `serving` beside the prediction log root.
    state_dir: Path | None = None
    challenger_alias: str = "challenger"

    @property
    def model_uri(self) -> str:
        """The default project's model, as far as known before the projects are read."""
        if self.model_name is None:
            return f"the {self.default_project} project's model @{self.model_alias}"
        return f"models:/{self.model_name}@{self.model_alias}"

    def log_root(self) -> Path:
        if self.prediction_log_root is not None:
            return self.prediction_log_root
        if self.prediction_log_dir is None:
            raise ValueError("set prediction_log_root or prediction_log_dir")
        return self.prediction_log_dir.parent

    def serving_state_dir(self) -> Path:
        return self.state_dir if self.state_dir is not None else self.log_root().parent / "serving"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "ServingSettings":
        platform = Settings.from_env(dict(environ))
        runtime_dir = environ.get("MLOPS_SERVING_RUNTIME_DIR")
        model_name = environ.get("MLOPS_MODEL_NAME") or None
        return cls(
            tracking_uri=platform.mlflow_tracking_uri,
            model_name=model_name,
            model_alias=platform.model_alias,
            # The drift monitoring of each project reads <root>/<its model name>.
            prediction_log_dir=platform.prediction_log_dir / model_name if model_name else None,
            prediction_log_root=platform.prediction_log_dir,
            default_project=environ.get("MLOPS_SERVING_DEFAULT_MODEL") or DEFAULT_PROJECT,
            poll_seconds=_positive(environ, "MLOPS_SERVING_POLL_SECONDS", float, cls.poll_seconds),
            # An empty token must not open the admin endpoint to anyone sending an empty bearer.
            admin_token=environ.get("MLOPS_ADMIN_TOKEN") or None,
            max_batch_rows=_positive(environ, "MLOPS_SERVING_MAX_BATCH_ROWS", int, cls.max_batch_rows),
            max_body_bytes=_positive(environ, "MLOPS_SERVING_MAX_BODY_BYTES", int, cls.max_body_bytes),
            prediction_log_flush_seconds=_positive(
                environ, "MLOPS_PREDICTION_LOG_FLUSH_SECONDS", float, cls.prediction_log_flush_seconds
            ),
            prediction_log_max_bytes=_positive(environ, "MLOPS_PREDICTION_LOG_MAX_BYTES", int, cls.prediction_log_max_bytes),
            prediction_log_max_pending_rows=_positive(
                environ, "MLOPS_PREDICTION_LOG_MAX_PENDING_ROWS", int, cls.prediction_log_max_pending_rows
            ),
            runtime_dir=Path(runtime_dir) if runtime_dir else None,
            state_dir=Path(environ["MLOPS_SERVING_STATE_DIR"]) if environ.get("MLOPS_SERVING_STATE_DIR") else None,
            challenger_alias=environ.get("MLOPS_CHALLENGER_ALIAS") or cls.challenger_alias,
        )


def _positive(environ: Mapping[str, str], name: str, kind: type[Number], default: Number) -> Number:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be positive")
    return value

