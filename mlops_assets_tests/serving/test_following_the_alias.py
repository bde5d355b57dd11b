"""Following `@production`: nothing before it exists, new versions without restart, broken ones refused."""

import logging
import shutil
import socket

import pandas as pd

from .conftest import SEED_RECORD, serving, wait_for
from .prometheus import parse_prometheus


def served_version(client) -> str | None:
    return client.get("/model").json()["version"]


def test_before_any_production_model_the_app_says_so_and_then_follows(registry, settings_for) -> None:
    model = registry.new_model(["v1"])  # registered, but no alias yet

    with serving(settings_for(model), wait_ready=False) as client:
        predict = client.post("/predict", json=SEED_RECORD)
        assert predict.status_code == 503
        assert f"models:/{model.name}@production" in predict.json()["detail"]
        assert predict.headers["retry-after"]
        assert client.post("/invocations", json={"dataframe_records": [SEED_RECORD]}).status_code == 503
        assert client.get("/ready").status_code == 503
        assert client.get("/ping").status_code == 503
        assert client.get("/health").status_code == 200
        state = client.get("/model")
        assert state.status_code == 503 and state.json()["version"] is None
        # validation problems are still the client's: a bad body is not a reason to say "unavailable" less clearly
        assert client.post("/predict", json={"nonsense": 1}).status_code in (422, 503)

        model.move_alias("v1")

        wait_for(lambda: client.get("/ready").status_code == 200, what="the app to pick up the new alias")
        assert client.post("/predict", json=SEED_RECORD).status_code == 200


def test_a_moved_alias_is_served_without_restart(registry, settings_for) -> None:
    model = registry.new_model(["v1", "v2"], alias="v1")
    seed = pd.DataFrame([SEED_RECORD])
    first, second = registry.expected("v1", seed)[0], registry.expected("v2", seed)[0]
    assert first != second  # the two versions are told apart by their answers

    with serving(settings_for(model)) as client:
        before = client.post("/predict", json=SEED_RECORD).json()
        model.move_alias("v2")
        wait_for(lambda: served_version(client) == model.versions["v2"], what="version 2")
        after = client.post("/predict", json=SEED_RECORD).json()
        state = client.get("/model").json()
        metrics = parse_prometheus(client.get("/metrics").text)

    assert (before["model_version"], before["predictions"]) == (model.versions["v1"], [first])
    assert (after["model_version"], after["predictions"]) == (model.versions["v2"], [second])
    assert state["lineage"]["model_version"] == model.versions["v2"]
    assert metrics.value("serving_model_reloads_total") == 2
    assert metrics.value("serving_model_version", model=model.name, alias="production") == float(model.versions["v2"])


def test_versions_that_fail_to_load_or_to_predict_are_refused_and_the_old_one_keeps_serving(
    registry, settings_for, caplog
) -> None:
    model = registry.new_model(["v1", "broken_artifact", "fails_to_predict", "v2"], alias="v1")
    good = model.versions["v1"]

    with caplog.at_level(logging.INFO, logger="serving"), serving(settings_for(model)) as client:
        for label, stage in (("broken_artifact", "load"), ("fails_to_predict", "smoke_test")):
            bad = model.move_alias(label)
            refused = wait_for(
                lambda bad=bad: next((r for r in client.get("/model").json()["refused_versions"] if r["version"] == bad), None),
                what=f"version {bad} to be refused",
            )
            assert refused["stage"] == stage, refused
            answer = client.post("/predict", json=SEED_RECORD)
            assert answer.status_code == 200 and answer.json()["model_version"] == good
            assert client.get("/ready").status_code == 200

        metrics = parse_prometheus(client.get("/metrics").text)
        state = client.get("/model").json()

        # a refused version is not retried by every poll, but the next good one is taken
        model.move_alias("v2")
        wait_for(lambda: served_version(client) == model.versions["v2"], what="the good version after the refusals")

    assert state["version"] == good
    assert [r["version"] for r in state["refused_versions"]] == [
        model.versions["fails_to_predict"],
        model.versions["broken_artifact"],
    ]
    assert "BadZipFile" in state["refused_versions"][1]["reason"] or "zip" in state["refused_versions"][1]["reason"].lower()
    assert "features" in state["refused_versions"][0]["reason"]
    assert metrics.value("serving_model_reload_failures_total", stage="load") == 1
    assert metrics.value("serving_model_reload_failures_total", stage="smoke_test") == 1
    refusals = [r for r in caplog.records if r.levelno == logging.ERROR and "refused" in r.getMessage()]
    assert len(refusals) == 2, [r.getMessage() for r in caplog.records]
    assert f"still serving version {good}" in refusals[0].getMessage()


def test_an_unreachable_registry_is_counted_and_survived(registry, settings_for) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings = settings_for("housing_price", tracking_uri=f"http://127.0.0.1:{closed_port}")

    with serving(settings, wait_ready=False) as client:
        wait_for(  # every project polls this registry: the errors counted may all be other projects'
            lambda: parse_prometheus(client.get("/metrics").text).value("serving_registry_errors_total") >= 2
            and client.get("/model").json()["last_registry_error"] is not None,
            what="failed polls of the default project's alias",
        )
        state = client.get("/model").json()
        assert client.get("/health").status_code == 200
        unavailable = client.post("/predict", json=SEED_RECORD)

    assert "ConnectionError" in state["last_registry_error"] or "Connection" in state["last_registry_error"]
    assert unavailable.status_code == 503 and "registry error" in unavailable.json()["detail"]


def test_a_registry_that_breaks_while_serving_does_not_stop_predictions(registry, settings_for, tmp_path) -> None:
    """The registry database becomes unreadable under a serving app, then comes back."""
    model = registry.new_model(["v1"], alias="v1")
    database = tmp_path / "registry-copy.db"
    shutil.copy(registry.tracking_uri.removeprefix("sqlite:///"), database)
    healthy = database.read_bytes()

    with serving(settings_for(model, tracking_uri=f"sqlite:///{database}")) as client:
        with open(database, "r+b") as file:  # same inode: open connections see it too
            file.write(b"this is not an sqlite database" * 100)
        wait_for(  # every project polls this registry: the errors counted may all be other projects'
            lambda: parse_prometheus(client.get("/metrics").text).value("serving_registry_errors_total") >= 2
            and client.get("/model").json()["last_registry_error"] is not None,
            what="failed polls of the default project's alias",
        )
        during = [client.post("/predict", json=SEED_RECORD) for _ in range(5)]
        error_seen = client.get("/model").json()["last_registry_error"]
        readiness_during = client.get("/ready")
        with open(database, "r+b") as file:
            file.write(healthy)
        wait_for(lambda: client.get("/model").json()["last_registry_error"] is None, what="the registry to be readable again")
        readiness_after = client.get("/ready").json()

    assert readiness_during.status_code == 200 and readiness_during.json()["status"] == "degraded"
    assert readiness_after["status"] == "ok"

    assert all(response.status_code == 200 for response in during)
    assert all(response.json()["model_version"] == model.versions["v1"] for response in during)
    assert error_seen is not None
