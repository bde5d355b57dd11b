"""Champion and challenger in live traffic, and ground truth fed back: `python -m serving` with two
workers over real HTTP, on the session registry's two housing versions, v1 as `production` (the
champion) and v2 as `challenger`.

The tests share one server and run in order: each sets the traffic mode it needs through the admin
route; the last one restarts the server on the same folders.
"""

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest
from mlflow import MlflowClient

from mlops_assets.projects.housing.domain import RAW_FEATURES
from mlops_assets_tests.processes import stop
from serving.traffic import caller_position

from .conftest import ADMIN_TOKEN, RegisteredModel, SessionRegistry, start_serving_process, wait_for
from .prometheus import parse_prometheus

PROJECT = "housing"
CHALLENGER_ALIAS = "challenger"
WORKERS = 2
AUTHORIZATION = {"authorization": f"Bearer {ADMIN_TOKEN}"}
# Every worker re-reads the policy file four times a second; this is comfortably more.
POLICY_PROPAGATION_SECONDS = 0.8


@dataclass
class Server:
    registry: SessionRegistry
    model: RegisteredModel
    folder: Path
    process: subprocess.Popen | None = None
    base: str = ""
    # A connection per request, as independent callers make them, so requests reach both workers;
    # one client rather than httpx.post's client per call, which costs milliseconds each.
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)))

    def start(self) -> None:
        environment = {"MLOPS_MODEL_NAME": self.model.name, "MLOPS_ADMIN_TOKEN": ADMIN_TOKEN}
        self.process, self.base, log = start_serving_process(
            self.folder, self.registry.tracking_uri, workers=WORKERS, environment=environment
        )
        # Both workers serve both versions: each publishes the version it holds under each alias.
        wait_for(
            lambda: self._loaded_everywhere(CHALLENGER_ALIAS) and self._loaded_everywhere("production"),
            timeout=120,
            what=f"both workers to load champion and challenger ({log})",
        )

    def _loaded_everywhere(self, alias: str) -> bool:
        try:
            exposition = parse_prometheus(httpx.get(f"{self.base}/metrics", timeout=5).text)
        except httpx.HTTPError:
            return False
        label = "v2" if alias == CHALLENGER_ALIAS else "v1"
        held = exposition.matching("serving_model_version", model=self.model.name, alias=alias)
        return held.count(float(self.model.versions[label])) == WORKERS

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, grace=30)

    def predict(self, record: dict, caller: str | None = None) -> dict:
        headers = {"x-caller-key": caller} if caller is not None else {}
        response = self.http.post(f"{self.base}/models/{PROJECT}/predict", json=record, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    def set_traffic(self, mode: str, share: float = 0.0) -> dict:
        response = self.http.put(f"{self.base}/admin/models/{PROJECT}/traffic", json={"mode": mode, "canary_share": share}, headers=AUTHORIZATION)
        assert response.status_code == 200, response.text
        time.sleep(POLICY_PROPAGATION_SECONDS)
        return response.json()

    def feedback(self, body: object) -> httpx.Response:
        return self.http.post(f"{self.base}/models/{PROJECT}/feedback", json=body)

    def logged(self, request_ids: set[str]) -> pd.DataFrame:
        """The logged rows of these requests, once every one of them is in the log's files."""
        folder = self.folder / "prediction_log" / self.model.name

        def read() -> tuple[pd.DataFrame] | None:  # a tuple: a DataFrame has no truth value to wait on
            if not folder.is_dir():
                return None
            table = ds.dataset(folder, format="parquet", partitioning="hive", ignore_prefixes=[".", "_"]).to_table()
            frame = table.to_pandas()
            frame = frame[frame["request_id"].isin(request_ids)]
            return (frame,) if set(frame["request_id"]) == request_ids else None

        (frame,) = wait_for(read, timeout=15, what="the predictions in the log")  # type: ignore[misc]
        return frame


@pytest.fixture(scope="module")
def server(registry: SessionRegistry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    model = registry.new_model(["v1", "v2"], alias="v1")
    client = MlflowClient(registry.tracking_uri, registry_uri=registry.tracking_uri)
    client.set_registered_model_alias(model.name, CHALLENGER_ALIAS, model.versions["v2"])
    running = Server(registry, model, tmp_path_factory.mktemp("champion_challenger"))
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def records(registry: SessionRegistry) -> list[dict]:
    frame = registry.frame.dropna(subset=list(RAW_FEATURES)).head(40)
    return [{name: row[name] for name in RAW_FEATURES} for _, row in frame.iterrows()]


def test_the_traffic_routes_need_the_admin_token(server: Server) -> None:
    path = f"{server.base}/admin/models/{PROJECT}/traffic"

    assert httpx.get(path, timeout=10).status_code == 401
    assert httpx.put(path, json={"mode": "shadow"}, headers={"authorization": "Bearer wrong"}, timeout=10).status_code == 403
    assert httpx.put(path, json={"mode": "sideways"}, headers=AUTHORIZATION, timeout=10).status_code == 422
    assert httpx.put(path, json={"mode": "canary", "canary_share": 1.5}, headers=AUTHORIZATION, timeout=10).status_code == 422
    assert httpx.get(f"{server.base}/admin/models/nowhere/traffic", headers=AUTHORIZATION, timeout=10).status_code == 404


def test_without_a_policy_the_champion_answers_every_request_and_the_log_says_so(server: Server, records: list[dict]) -> None:
    state = httpx.get(f"{server.base}/admin/models/{PROJECT}/traffic", headers=AUTHORIZATION, timeout=10).json()
    answers = [server.predict(record, caller=f"caller-{i}") for i, record in enumerate(records[:10])]

    assert (state["mode"], state["effective_mode"], state["challenger_version"]) == ("off", "off", server.model.versions["v2"])
    assert {answer["model_version"] for answer in answers} == {server.model.versions["v1"]}
    logged = server.logged({answer["request_id"] for answer in answers})
    assert set(logged["answered_by"]) == {"champion"}
    assert set(logged["answered_by_version"]) == {server.model.versions["v1"]}
    assert logged["shadow_prediction"].isna().all()


def test_a_canary_sends_its_share_to_the_challenger_and_each_caller_always_to_the_same_side(
    server: Server, records: list[dict]
) -> None:
    share = 0.3
    callers = [f"customer-{i}" for i in range(200)]
    server.set_traffic("canary", share)

    first = {caller: server.predict(records[i % len(records)], caller=caller) for i, caller in enumerate(callers)}
    again = [(caller, server.predict(records[0], caller=caller)) for caller in callers[:30] for _ in range(3)]
    anonymous = [server.predict(records[0]) for _ in range(150)]

    challenger, champion = server.model.versions["v2"], server.model.versions["v1"]
    answered_by_challenger = {caller for caller, answer in first.items() if answer["model_version"] == challenger}
    assert abs(len(answered_by_challenger) / len(callers) - share) < 0.1
    # The side is a function of the key alone: the same in both workers, and computable by anyone.
    assert answered_by_challenger == {caller for caller in callers if caller_position(PROJECT, caller) < share}
    assert all(answer["model_version"] == (challenger if caller in answered_by_challenger else champion) for caller, answer in again)
    anonymous_share = sum(answer["model_version"] == challenger for answer in anonymous) / len(anonymous)
    assert abs(anonymous_share - share) < 0.15  # 4 standard deviations of a draw of 150
    # The project's model state names both versions and the traffic in effect.
    state = server.http.get(f"{server.base}/models/{PROJECT}").json()
    assert (state["version"], state["challenger_version"], state["traffic_mode"]) == (champion, challenger, "canary")
    some_canary = next(answer for answer in first.values() if answer["model_version"] == challenger)
    logged = server.logged({some_canary["request_id"]})
    assert (logged["answered_by"].item(), logged["answered_by_version"].item()) == ("challenger", challenger)
    lineage = server.http.get(f"{server.base}/predictions/{some_canary['request_id']}").json()
    assert (lineage["answered_by"], lineage["model"]["model_version"]) == ("challenger", challenger)


def test_in_shadow_the_champion_answers_and_the_log_holds_what_the_challenger_said(
    server: Server, registry: SessionRegistry, records: list[dict]
) -> None:
    state = server.set_traffic("shadow")

    answers = [server.predict(records[i], caller="customer-0") for i in range(20)]
    batch = httpx.post(f"{server.base}/models/{PROJECT}/predict", json=records[20:40], timeout=30).json()

    assert state["effective_mode"] == "shadow"
    assert {answer["model_version"] for answer in [*answers, batch]} == {server.model.versions["v1"]}
    logged = server.logged({answer["request_id"] for answer in [*answers, batch]})
    assert set(logged["answered_by"]) == {"champion"}
    assert set(logged["shadow_version"]) == {server.model.versions["v2"]}
    frame = logged[list(RAW_FEATURES)].reset_index(drop=True)
    np.testing.assert_allclose(logged["shadow_prediction"].to_numpy(), registry.expected("v2", frame), rtol=1e-9)
    np.testing.assert_allclose(logged["prediction"].to_numpy(), registry.expected("v1", frame), rtol=1e-9)
    lineage = server.http.get(f"{server.base}/predictions/{answers[0]['request_id']}").json()
    assert (lineage["answered_by"], lineage["shadow_version"]) == ("champion", server.model.versions["v2"])
    assert lineage["rows"][0]["shadow_prediction"] == registry.expected("v2", frame.head(1))[0]


def test_feedback_is_stored_once_per_prediction_and_refused_for_ids_never_answered(server: Server, records: list[dict]) -> None:
    first, second = server.predict(records[0]), server.predict(records[1])
    never_answered = str(uuid.UUID(int=(time.time_ns() // 1_000_000 - 60_000) << 80 | 0x7 << 76 | 0b10 << 62))

    stored = server.feedback({"request_id": first["request_id"], "outcome": 452600.0})
    duplicate = server.feedback({"request_id": first["request_id"], "outcome": 1.0})
    unknown = server.feedback([{"request_id": second["request_id"], "outcome": 2.0}, {"request_id": never_answered, "outcome": 3.0}])
    not_a_number = server.feedback({"request_id": second["request_id"], "outcome": "expensive"})
    second_alone = server.feedback([{"request_id": second["request_id"], "outcome": 358500}])

    assert (stored.status_code, stored.json()) == (201, {"stored": 1})
    assert duplicate.status_code == 409 and first["request_id"] in duplicate.json()["detail"]
    assert unknown.status_code == 404 and never_answered in unknown.json()["detail"]
    assert second["request_id"] not in unknown.json()["detail"]
    assert not_a_number.status_code == 422 and not_a_number.json()["errors"][0]["field"] == "outcome"
    assert second_alone.status_code == 201  # the batch refused for its unknown id stored nothing
    assert server.feedback({"request_id": "not-an-id", "outcome": 1.0}).status_code == 404


def test_metrics_count_requests_latency_rows_feedback_and_share_per_model_version(server: Server) -> None:
    time.sleep(1.2)  # each worker publishes its counts every second; a scrape reaches one of them
    exposition = parse_prometheus(httpx.get(f"{server.base}/metrics", timeout=10).text)
    champion = {"project": PROJECT, "model": server.model.name, "version": server.model.versions["v1"], "role": "champion"}
    challenger = {"project": PROJECT, "model": server.model.name, "version": server.model.versions["v2"], "role": "challenger"}

    for labels in (champion, challenger):
        assert exposition.value("serving_model_requests_total", **labels) > 0
        assert exposition.value("serving_model_request_duration_seconds_count", **labels) > 0
        assert exposition.value("serving_model_predicted_rows_total", **labels) > 0
    assert exposition.value("serving_model_feedback_total", **champion) == 2
    assert exposition.value("serving_shadow_predicted_rows_total", model=server.model.name, version=challenger["version"]) >= 40
    # In shadow mode the champion answers everything, in every worker.
    assert exposition.matching("serving_model_traffic_share", **champion) == [1.0] * WORKERS
    assert exposition.matching("serving_model_traffic_share", **challenger) == [0.0] * WORKERS


def test_the_traffic_policy_and_the_feedback_survive_a_restart(server: Server, records: list[dict]) -> None:
    server.set_traffic("canary", 0.5)
    answer = server.predict(records[2])
    assert server.feedback({"request_id": answer["request_id"], "outcome": 1.5}).status_code == 201

    server.stop()
    server.start()

    state = httpx.get(f"{server.base}/admin/models/{PROJECT}/traffic", headers=AUTHORIZATION, timeout=10).json()
    assert (state["mode"], state["canary_share"], state["effective_mode"]) == ("canary", 0.5, "canary")
    assert server.feedback({"request_id": answer["request_id"], "outcome": 1.5}).status_code == 409
    sides = {server.predict(records[0], caller=f"after-restart-{i}")["model_version"] for i in range(30)}
    assert sides == {server.model.versions["v1"], server.model.versions["v2"]}
