"""mlops_assets.platform.pipeline_metrics against a real Pushgateway: what each function pushes, that
pushes leave each other's metrics alone, and that no push can ever fail the pipeline calling it."""

import logging
import socket
import time
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlops_assets.platform import pipeline_metrics
from mlops_assets.platform.pipeline_metrics import (
    record_check_result,
    record_drift,
    record_live_metric,
    record_production_model,
    record_refresh_succeeded,
    record_retraining_decision,
)

from .conftest import Pushgateway


@dataclass(frozen=True)
class Drift:
    feature: str
    psi: float | None
    ks: float | None


def pushed(gateway: Pushgateway, name: str) -> dict[frozenset, float]:
    """The series of `name` on the Pushgateway, by their labels other than the job (and the empty
    instance the Pushgateway adds, so that Prometheus does not add its own)."""
    series = {}
    for family in text_string_to_metric_families(gateway.metrics()):
        for sample in family.samples:
            if sample.name == name:
                assert sample.labels.pop("job") == "mlops_pipeline"
                assert sample.labels.pop("instance") == ""
                series[frozenset(sample.labels.items())] = sample.value
    return series


def labels(**values: str) -> frozenset:
    return frozenset(values.items())


@pytest.fixture
def gateway(pushgateway: Pushgateway, monkeypatch: pytest.MonkeyPatch) -> Pushgateway:
    monkeypatch.setenv("MLOPS_PUSHGATEWAY_URL", pushgateway.url)
    return pushgateway


def test_without_a_pushgateway_url_nothing_is_pushed(pushgateway, monkeypatch) -> None:
    for unset in (None, "", "  "):
        if unset is None:
            monkeypatch.delenv("MLOPS_PUSHGATEWAY_URL", raising=False)
        else:
            monkeypatch.setenv("MLOPS_PUSHGATEWAY_URL", unset)

        assert record_refresh_succeeded("housing") is False
        assert record_production_model("housing", version=3, metric="rmse", holdout_value=1.0, higher_is_better=False) is False
        assert record_check_result("housing", asset="housing/raw", check="contract", passed=True, blocking=True) is False
        assert record_drift("housing", source="serving", drifts=[], psi_threshold=0.2, ks_threshold=0.1) is False
        assert record_retraining_decision("housing", triggered=True) is False
        assert record_live_metric("housing", version=3, metric="rmse", value=1.0) is False

    assert "mlops_" not in pushgateway.metrics()


def test_a_successful_refresh_pushes_its_time_so_that_its_age_is_time_minus_it(gateway) -> None:
    before = time.time()
    assert record_refresh_succeeded("housing") is True
    assert record_refresh_succeeded("churn", at=1_700_000_000.0) is True

    refreshed = pushed(gateway, "mlops_last_refresh_timestamp_seconds")
    assert before <= refreshed[labels(project="housing")] <= time.time()
    assert refreshed[labels(project="churn")] == 1_700_000_000.0


def test_the_production_version_and_its_holdout_metric_replace_the_previous_ones(gateway) -> None:
    record_refresh_succeeded("housing", at=1_700_000_000.0)
    record_production_model("housing", version="7", metric="rmse", holdout_value=40_285.0, higher_is_better=False)
    record_production_model("housing", version="8", metric="rmse", holdout_value=39_900.0, higher_is_better=False)
    record_production_model("iris", version=2, metric="accuracy", holdout_value=0.96, higher_is_better=True)

    assert pushed(gateway, "mlops_production_model_version") == {labels(project="housing"): 8, labels(project="iris"): 2}
    assert pushed(gateway, "mlops_production_holdout_metric") == {
        labels(project="housing", metric="rmse", version="8", better="lower"): 39_900.0,
        labels(project="iris", metric="accuracy", version="2", better="higher"): 0.96,
    }
    # the project's other metrics, pushed to the same group, stay
    assert pushed(gateway, "mlops_last_refresh_timestamp_seconds") == {labels(project="housing"): 1_700_000_000.0}


def test_each_check_keeps_its_own_last_result(gateway) -> None:
    record_check_result("housing", asset="housing/raw_housing", check="contract", passed=True, blocking=True)
    record_check_result("housing", asset="housing/cleaned_housing", check="contract", passed=True, blocking=True)
    record_check_result("housing", asset="housing/cleaned_housing", check="row_count_trend", passed=True, blocking=False)
    record_check_result("housing", asset="housing/cleaned_housing", check="contract", passed=False, blocking=True)

    assert pushed(gateway, "mlops_check_passed") == {
        labels(project="housing", asset="housing/raw_housing", check="contract", blocking="true"): 1,
        labels(project="housing", asset="housing/cleaned_housing", check="contract", blocking="true"): 0,
        labels(project="housing", asset="housing/cleaned_housing", check="row_count_trend", blocking="false"): 1,
    }


def test_a_drift_comparison_replaces_the_previous_one_of_its_source_only(gateway) -> None:
    record_drift(
        "housing",
        source="serving",
        drifts=[Drift("median_income", 0.05, 0.02), Drift("ocean_proximity", 0.31, None), Drift("total_rooms", None, None)],
        psi_threshold=0.2,
        ks_threshold=0.1,
    )
    record_drift("housing", source="new_data", drifts=[Drift("median_income", 0.01, 0.01)], psi_threshold=0.2, ks_threshold=0.1)
    record_drift("housing", source="serving", drifts=[Drift("median_income", 0.25, 0.15)], psi_threshold=0.2, ks_threshold=0.1)

    assert pushed(gateway, "mlops_drift_psi") == {
        labels(project="housing", source="serving", feature="median_income"): 0.25,
        labels(project="housing", source="new_data", feature="median_income"): 0.01,
    }
    assert pushed(gateway, "mlops_drift_ks") == {
        labels(project="housing", source="serving", feature="median_income"): 0.15,
        labels(project="housing", source="new_data", feature="median_income"): 0.01,
    }
    assert set(pushed(gateway, "mlops_drift_psi_threshold").values()) == {0.2}
    assert set(pushed(gateway, "mlops_drift_ks_threshold").values()) == {0.1}
    assert len(pushed(gateway, "mlops_drift_ks_threshold")) == 2  # one per source


def test_a_retraining_decision_keeps_the_time_of_the_last_trigger(gateway) -> None:
    record_retraining_decision("housing", triggered=True, at=1_700_000_000.0)
    record_retraining_decision("housing", triggered=False)

    assert pushed(gateway, "mlops_retraining_triggered") == {labels(project="housing"): 0}
    assert pushed(gateway, "mlops_retraining_last_triggered_timestamp_seconds") == {labels(project="housing"): 1_700_000_000.0}


def test_the_live_metric_is_kept_per_version(gateway) -> None:
    record_live_metric("housing", version=7, metric="rmse", value=41_000.0)
    record_live_metric("housing", version=8, metric="rmse", value=47_500.0)

    assert pushed(gateway, "mlops_live_metric") == {
        labels(project="housing", version="7", metric="rmse"): 41_000.0,
        labels(project="housing", version="8", metric="rmse"): 47_500.0,
    }


def test_a_pushgateway_that_is_down_or_refuses_only_logs_a_warning(pushgateway, monkeypatch, caplog) -> None:
    closed_port = socket.socket()
    closed_port.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    unreachable = [
        f"http://user:secret-password@127.0.0.1:{closed_port.getsockname()[1]}",
        f"{pushgateway.url}/not/the/api",  # answers 404
        "http://no-such-host.invalid:9091",
    ]
    try:
        for url in unreachable:
            monkeypatch.setenv("MLOPS_PUSHGATEWAY_URL", url)
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger=pipeline_metrics.__name__):
                assert record_refresh_succeeded("housing") is False
                assert record_check_result("housing", asset="housing/raw", check="contract", passed=False, blocking=True) is False

            assert [record.levelno for record in caplog.records] == [logging.WARNING] * 2, url
            assert "could not push the refresh metrics of housing" in caplog.records[0].getMessage()
            assert "secret-password" not in caplog.text
    finally:
        closed_port.close()


def test_a_pushgateway_that_never_answers_holds_the_pipeline_no_longer_than_the_timeout(monkeypatch) -> None:
    monkeypatch.setattr(pipeline_metrics, "PUSH_TIMEOUT_SECONDS", 0.5)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections complete in the kernel's backlog, and are never answered
        monkeypatch.setenv("MLOPS_PUSHGATEWAY_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")

        started = time.monotonic()
        assert record_refresh_succeeded("housing") is False
        assert time.monotonic() - started < 3
