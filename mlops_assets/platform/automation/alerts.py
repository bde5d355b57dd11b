"""Run failure alerts: every failed run of this code location is logged on the sensor's tick and, when
MLOPS_ALERT_WEBHOOK_URL is set, POSTed as JSON to that webhook (Slack-compatible: a `text` field, with
the details alongside)."""

import json
import urllib.request
from typing import Any

from dagster import ConfigurableResource, DagsterEvent, DagsterRun, DefaultSensorStatus, RunFailureSensorContext, run_failure_sensor
from pydantic import Field

from mlops_assets.platform.ledger import PROJECT_TAG_PREFIX, run_trigger

MAX_ERROR_CHARS = 2_000


class AlertWebhookError(Exception):
    pass


class AlertWebhook(ConfigurableResource):
    """Where failure alerts go; no URL means they are only logged."""

    url: str | None = Field(default=None, description="An http(s) URL that accepts a JSON POST (MLOPS_ALERT_WEBHOOK_URL).")
    timeout_seconds: float = Field(default=10.0, gt=0, description="How long one POST may take.")

    def post(self, payload: dict[str, Any]) -> int:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "mlops-assets-alerts"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                return response.status
        except OSError as error:
            raise AlertWebhookError(f"the alert webhook did not take the alert: {error}") from error


def _clipped(text: str | None) -> str | None:
    return text if text is None or len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + "..."


def step_error(event: DagsterEvent) -> str | None:
    failure = event.step_failure_data
    # A raised `Failure` carries its description; any other exception, its message.
    if failure.user_failure_data is not None and failure.user_failure_data.description:
        return failure.user_failure_data.description
    return failure.error.message if failure.error else None


def failure_alert(run: DagsterRun, run_error: str | None, step_errors: dict[str, str | None]) -> dict[str, Any]:
    trigger = run_trigger(run.tags)
    steps = ", ".join(step_errors) or "no step (the run itself)"
    return {
        "text": f"Dagster run {run.run_id[:8]} of {run.job_name} failed (launched by {trigger.describe()}); failed: {steps}.",
        "event": "run_failure",
        "run_id": run.run_id,
        "job_name": run.job_name,
        "launched_by": {"kind": trigger.kind, "name": trigger.name},
        "error": _clipped(run_error),
        "failed_steps": [{"step": step, "error": _clipped(error)} for step, error in step_errors.items()],
        "tags": {key: value for key, value in run.tags.items() if key.startswith(PROJECT_TAG_PREFIX)},
    }


@run_failure_sensor(
    name="run_failure_alert",
    default_status=DefaultSensorStatus.RUNNING,
    description="Logs every failed run of this code location and POSTs it to MLOPS_ALERT_WEBHOOK_URL when set.",
)
def run_failure_alert(context: RunFailureSensorContext, alert_webhook: AlertWebhook) -> None:
    step_errors = {event.step_key or "?": step_error(event) for event in context.get_step_failure_events()}
    alert = failure_alert(context.dagster_run, context.failure_event.message, step_errors)
    context.log.error(alert["text"])
    if alert_webhook.url:
        status = alert_webhook.post(alert)
        context.log.info(f"alert for run {context.dagster_run.run_id} posted to the webhook: HTTP {status}")
