"""POST /admin/reload behind its bearer token, GET /metrics in the Prometheus text format, lazy imports."""

import math
import subprocess
import sys

import pytest

from .conftest import ADMIN_TOKEN, REPOSITORY_ROOT, SEED_RECORD, serving, wait_for
from .prometheus import ExpositionError, parse_prometheus


@pytest.fixture
def guarded(registry, settings_for):
    model = registry.new_model(["v1", "v2", "broken_artifact"], alias="v1")
    # Polling so slow that only /admin/reload can make the app notice a moved alias within the test.
    with serving(settings_for(model, admin_token=ADMIN_TOKEN, poll_seconds=3600)) as client:
        yield client, model


def test_reload_without_a_token_is_401(guarded) -> None:
    client, _ = guarded

    for headers in ({}, {"authorization": "Basic dXNlcjpwYXNz"}, {"authorization": "Bearer"}):
        response = client.post("/admin/reload", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"


def test_reload_with_a_wrong_token_is_403(guarded) -> None:
    client, _ = guarded

    for token in ("wrong", ADMIN_TOKEN + "x", ADMIN_TOKEN[:-1], ADMIN_TOKEN.upper()):
        response = client.post("/admin/reload", headers={"authorization": f"Bearer {token}"})
        assert response.status_code == 403, token
        assert response.json()["detail"] == "The bearer token is not valid."


def test_reload_with_the_token_loads_the_aliased_version_now(guarded) -> None:
    client, model = guarded
    authorization = {"authorization": f"Bearer {ADMIN_TOKEN}"}

    unchanged = client.post("/admin/reload", headers=authorization)
    model.move_alias("v2")
    loaded = client.post("/admin/reload", headers=authorization)
    after = client.post("/predict", json=SEED_RECORD).json()
    model.move_alias("broken_artifact")
    refused = client.post("/admin/reload", headers=authorization)
    refused_again = client.post("/admin/reload", headers=authorization)  # an operator retry does retry

    assert (unchanged.status_code, unchanged.json()["outcome"]) == (200, "unchanged")
    assert (loaded.status_code, loaded.json()["outcome"], loaded.json()["version"]) == (200, "loaded", model.versions["v2"])
    assert after["model_version"] == model.versions["v2"]
    assert (refused.status_code, refused.json()["outcome"]) == (409, "refused")
    assert (refused_again.status_code, refused_again.json()["outcome"]) == (409, "refused")
    metrics = parse_prometheus(client.get("/metrics").text)
    assert metrics.value("serving_model_reload_failures_total", stage="load") == 2
    assert client.post("/predict", json=SEED_RECORD).json()["model_version"] == model.versions["v2"]


def test_without_a_configured_token_the_reload_route_does_not_exist(served_v1) -> None:
    assert served_v1.post("/admin/reload", headers={"authorization": "Bearer anything"}).status_code == 404
    assert "/admin/reload" not in served_v1.get("/schema/openapi.json").json()["paths"]


def test_metrics_parse_strictly_and_count_what_happened(registry, settings_for) -> None:
    model = registry.new_model(["v1"], alias="v1")

    with serving(settings_for(model)) as client:
        for _ in range(3):
            client.post("/predict", json=SEED_RECORD)
        client.post("/predict", json=[SEED_RECORD] * 4)
        client.post("/predict", json={**SEED_RECORD, "latitude": 0.0})
        client.post("/invocations", json={"dataframe_records": [SEED_RECORD] * 2})
        client.get("/predictions/not-an-id")
        response = client.get("/metrics")

    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    metrics = parse_prometheus(response.text)
    assert metrics.types["serving_requests_total"] == "counter"
    assert metrics.types["serving_request_duration_seconds"] == "histogram"
    assert metrics.value("serving_requests_total", route="/predict", method="POST", status="200") == 4
    assert metrics.value("serving_requests_total", route="/predict", method="POST", status="422") == 1
    assert metrics.value("serving_requests_total", route="/invocations", status="200") == 1
    assert metrics.value("serving_requests_total", route="/predictions/{request_id}", status="404") == 1
    assert metrics.value("serving_request_duration_seconds_count", route="/predict", status="200") == 4
    assert 0 < metrics.value("serving_request_duration_seconds_sum", route="/predict", status="200") < 30
    assert metrics.value("serving_request_duration_seconds_bucket", route="/predict", status="200", le="+Inf") == 4
    assert metrics.value("serving_predicted_rows_total", route="/predict") == 3 + 4
    assert metrics.value("serving_predicted_rows_total", route="/invocations") == 2
    assert metrics.value("serving_model_version", model=model.name, alias="production") == float(model.versions["v1"])
    assert metrics.value("serving_model_reloads_total") == 1
    assert metrics.value("serving_model_reload_failures_total") == 0
    assert metrics.value("serving_model_loaded_timestamp_seconds") > 1e9
    assert all(not math.isnan(value) for _, _, value in metrics.samples)


@pytest.mark.parametrize(
    "bad",
    [
        "serving_requests_total 1\n",  # no TYPE
        '# TYPE x counter\nx{a="1} 1\n',  # unterminated label
        "# TYPE x counter\nx one\n",  # not a number
        '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_count 1\nh_sum 1\n',  # not cumulative
        "# TYPE x counter\n# TYPE y counter\nx 1\ny 1\nx 2\n",  # interleaved
    ],
)
def test_the_metrics_parser_is_strict(bad: str) -> None:
    with pytest.raises(ExpositionError):
        parse_prometheus(bad)


def test_the_app_module_imports_fast_without_mlflow_sklearn_or_pandas() -> None:
    probe = (
        "import sys, time; started = time.perf_counter(); import serving.app; elapsed = time.perf_counter() - started; "
        "heavy = sorted(m for m in ('mlflow', 'sklearn', 'pandas', 'pyarrow', 'dagster', 'pyspark') if m in sys.modules); "
        "print(elapsed, ','.join(heavy))"
    )
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPOSITORY_ROOT).stdout
    elapsed, heavy = output.split()[0], output.split()[1:]

    assert heavy == [], f"serving.app imported {heavy}"
    assert float(elapsed) < 5, f"serving.app took {elapsed}s to import"


def test_request_ids_do_not_become_metric_labels(served_v1) -> None:
    """Metrics are counted by route template, so request ids do not become label values."""
    for request_id in ("a", "b", "c"):
        served_v1.get(f"/predictions/{request_id}")

    metrics = parse_prometheus(served_v1.get("/metrics").text)

    routes = {labels["route"] for name, labels, _ in metrics.samples if name == "serving_requests_total"}
    assert "/predictions/{request_id}" in routes
    assert not routes & {"/predictions/a", "/predictions/b", "/predictions/c"}


def test_a_reload_asked_of_one_worker_reaches_the_others(registry, settings_for, tmp_path) -> None:
    """Two apps sharing a runtime folder stand in for two uvicorn workers: /admin/reload hits only one."""
    model = registry.new_model(["v1", "v2"], alias="v1")
    shared = settings_for(model, admin_token=ADMIN_TOKEN, poll_seconds=3600, runtime_dir=tmp_path / "runtime")

    with serving(shared) as asked, serving(shared) as other:
        model.move_alias("v2")
        reloaded = asked.post("/admin/reload", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
        wait_for(lambda: other.get("/model").json()["version"] == model.versions["v2"], timeout=10, what="the other worker")
        # and each one's /metrics adds up both
        asked.post("/predict", json=SEED_RECORD)
        other.post("/predict", json=SEED_RECORD)
        wait_for(
            lambda: parse_prometheus(asked.get("/metrics").text).value("serving_predicted_rows_total", route="/predict") == 2,
            timeout=10,
            what="the metrics of both workers in one scrape",
        )

    assert reloaded.json()["outcome"] == "loaded"


def test_settings_come_from_the_environment_and_refuse_nonsense(tmp_path) -> None:
    from serving.settings import ServingSettings

    settings = ServingSettings.from_env(
        {
            "MLFLOW_TRACKING_URI": "sqlite:////tmp/x.db",
            "MLOPS_MODEL_NAME": "m",
            "MLOPS_MODEL_ALIAS": "champion",
            "MLOPS_DATA_ROOT": str(tmp_path),
            "MLOPS_SERVING_POLL_SECONDS": "2.5",
            "MLOPS_ADMIN_TOKEN": "",
        }
    )

    assert (settings.tracking_uri, settings.model_uri, settings.poll_seconds) == ("sqlite:////tmp/x.db", "models:/m@champion", 2.5)
    assert settings.prediction_log_dir == tmp_path / "prediction_log" / "m"
    assert settings.admin_token is None  # an empty token does not open the admin route
    for name, value in (("MLOPS_SERVING_POLL_SECONDS", "-1"), ("MLOPS_SERVING_MAX_BATCH_ROWS", "many")):
        with pytest.raises(ValueError, match=name):
            ServingSettings.from_env({name: value})
