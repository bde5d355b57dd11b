"""The run failure alert, from a real failed run to a real HTTP server on 127.0.0.1."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from dagster import build_run_status_sensor_context

from mlops_assets.platform.automation.alerts import AlertWebhook, AlertWebhookError, run_failure_alert
from mlops_assets.platform.automation.rollback import build_rollback_job
from mlops_assets.platform.ledger import DeploymentLedger
from mlops_assets.platform.resources.mlflow_registry import MlflowResource
from mlops_assets_tests.conftest import instance_under
from mlops_assets_tests.processes import free_port


class Webhook(ThreadingHTTPServer):
    received: list[dict]


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append({"path": self.path, "type": self.headers["Content-Type"], "body": json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    server = Webhook(("127.0.0.1", 0), _Receiver)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def failed_run(tmp_path: Path):
    """A rollback with no production model to roll back: a real run that fails in its op."""
    instance = instance_under(tmp_path / "dagster_home")
    registry = MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", alias="production")
    result = build_rollback_job("housing", "housing_price").execute_in_process(
        instance=instance,
        resources={"mlflow_resource": registry, "ledger": DeploymentLedger(path=str(tmp_path / "ledger.sqlite3"))},
        tags={"mlops/reason": "test"},
        raise_on_error=False,
    )
    assert not result.success
    yield instance, result
    instance.dispose()


def test_a_failed_run_is_posted_to_the_webhook(failed_run, webhook: Webhook):
    instance, result = failed_run
    context = build_run_status_sensor_context(
        sensor_name="run_failure_alert",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"alert_webhook": AlertWebhook(url=f"http://127.0.0.1:{webhook.server_port}/hooks/mlops")},
    )

    run_failure_alert(context)

    assert len(webhook.received) == 1
    alert = webhook.received[0]
    assert (alert["path"], alert["type"]) == ("/hooks/mlops", "application/json")
    body = alert["body"]
    assert body["run_id"] == result.run_id
    assert body["job_name"] == "housing_rollback"
    assert body["launched_by"] == {"kind": "manual", "name": None}
    assert [step["step"] for step in body["failed_steps"]] == ["housing_move_production_back"]
    assert "nothing to roll back" in body["failed_steps"][0]["error"]
    assert body["tags"] == {"mlops/action": "rollback", "mlops/project": "housing", "mlops/reason": "test"}
    assert result.run_id[:8] in body["text"] and "housing_rollback" in body["text"]


def test_an_unreachable_webhook_fails_the_tick_loudly(failed_run):
    instance, result = failed_run
    closed_port = free_port()
    context = build_run_status_sensor_context(
        sensor_name="run_failure_alert",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"alert_webhook": AlertWebhook(url=f"http://127.0.0.1:{closed_port}/", timeout_seconds=2)},
    )
    with pytest.raises(AlertWebhookError, match="did not take the alert"):
        run_failure_alert(context)


def test_without_a_webhook_the_alert_is_only_logged(failed_run):
    instance, result = failed_run
    context = build_run_status_sensor_context(
        sensor_name="run_failure_alert",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"alert_webhook": AlertWebhook()},
    )
    assert run_failure_alert(context) is None
