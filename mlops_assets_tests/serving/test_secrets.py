"""Secrets reach the app only through the environment, and it never repeats them: not in /model,
/ready, /metrics, the OpenAPI document, an error answer, nor the log."""

import logging
import socket

from mlops_assets.settings import redacted

from .conftest import ADMIN_TOKEN, SEED_RECORD, serving, wait_for
from .prometheus import parse_prometheus

PASSWORD = "s3cret-p4ssword"


def test_credentials_in_the_tracking_uri_and_the_admin_token_are_never_repeated(settings_for, caplog) -> None:
    with socket.socket() as probe:  # nothing listens there: every poll fails, and the error is reported
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings = settings_for(
        "housing_price", tracking_uri=f"http://mlflow-user:{PASSWORD}@127.0.0.1:{closed_port}", admin_token=ADMIN_TOKEN
    )

    with caplog.at_level(logging.DEBUG), serving(settings, wait_ready=False) as client:
        wait_for(
            lambda: parse_prometheus(client.get("/metrics").text).value("serving_registry_errors_total") >= 2,
            what="failed polls",
        )
        answers = [
            client.get("/model"),
            client.get("/ready"),
            client.get("/metrics"),
            client.get("/schema/openapi.json"),
            client.post("/predict", json=SEED_RECORD),
            client.post("/admin/reload", headers={"authorization": "Bearer wrong"}),
            client.post("/admin/reload", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}),
        ]

    assert answers[0].json()["last_registry_error"]  # the error is told, without the secret
    for answer in answers:
        assert PASSWORD not in answer.text, answer.request.url
        assert ADMIN_TOKEN not in answer.text, answer.request.url
    assert PASSWORD not in caplog.text and ADMIN_TOKEN not in caplog.text


def test_credentials_are_masked_in_any_url_of_a_text() -> None:
    assert redacted(f"https://user:{PASSWORD}@mlflow.example.com/") == "https://***@mlflow.example.com/"
    assert redacted(f"request to http://u:{PASSWORD}@h:5000/api failed") == "request to http://***@h:5000/api failed"
    assert redacted("sqlite:////data/mlflow.db") == "sqlite:////data/mlflow.db"
    assert redacted("write to someone@example.com") == "write to someone@example.com"
