"""A bounded soak: `python -m serving` with two workers over loopback, 32 keep-alive connections for a
minute, while everything that decides who answers changes underneath: the `production` and
`challenger` aliases swap their two versions, and the traffic mode cycles through canary, shadow and
off. No request may fail; every answer must be pyfunc's for its row and the version it names; every
logged row must name who answered and, in shadow, hold pyfunc's prediction of the shadow version; the
server's memory must stay bounded."""

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import SessionRegistry, wait_for
from .load import ConcurrentClients
from .test_champion_challenger import CHALLENGER_ALIAS, PROJECT, Server
from .test_prediction_equality import records_of

CONNECTIONS = 32
STEP_SECONDS = 6
# One step every STEP_SECONDS. Each mode is held once with either version as the champion: a swap
# exchanges the versions of `production` and `challenger`.
SCHEDULE = ("canary", "swap", "shadow", "swap", "off", "swap", "canary", "swap", "shadow", "off")
CANARY_SHARE = 0.5
# Growth of the whole server's resident memory from warm to the end of the soak. The prediction log
# holds at most its pending rows (flushed every 0.3 s here), so anything beyond this is a leak.
MAX_GROWTH_MIB = 64


def group_rss_mib(group: int) -> float:
    total = 0
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != group:
                continue
            with open(status.parent / "status") as lines:
                total += next(int(line.split()[1]) for line in lines if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total / 1024


@pytest.fixture
def server(registry: SessionRegistry, tmp_path: Path) -> Iterator[Server]:
    model = registry.new_model(["v1", "v2"], alias="v1")
    registry.reference.move_alias(model.name, CHALLENGER_ALIAS, model.versions["v2"])
    running = Server(registry, model, tmp_path)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def swap_champion_and_challenger(server: Server) -> None:
    client = server.registry.reference.client
    champion = client.get_model_version_by_alias(server.model.name, "production").version
    challenger = client.get_model_version_by_alias(server.model.name, CHALLENGER_ALIAS).version
    server.registry.reference.move_alias(server.model.name, "production", challenger)
    server.registry.reference.move_alias(server.model.name, CHALLENGER_ALIAS, champion)


def test_a_minute_at_32_connections_while_aliases_swap_and_canary_and_shadow_go_on_and_off(
    server: Server, registry: SessionRegistry
) -> None:
    frame = registry.frame.dropna().sample(500, random_state=9)
    records = records_of(frame)
    expected = {server.model.versions[label]: registry.expected(label, frame) for label in ("v1", "v2")}
    with ConcurrentClients(server.base, records, CONNECTIONS, path=f"/models/{PROJECT}/predict", caller_keys=True) as clients:
        answers = clients.answers
        wait_for(lambda: len(answers) > 2000, timeout=60, what="the load to warm up")
        warm_mib = group_rss_mib(server.process.pid)
        for step in SCHEDULE:
            if step == "swap":
                swap_champion_and_challenger(server)
            else:
                server.set_traffic(step, CANARY_SHARE if step == "canary" else 0.0)
            time.sleep(STEP_SECONDS)
        end_mib = group_rss_mib(server.process.pid)

    failures = [answer for answer in answers if answer.status != 200]
    wrong = [answer for answer in answers if answer.status == 200 and answer.prediction != expected[answer.version][answer.row]]
    versions = Counter(answer.version for answer in answers)
    logged = server.logged({answer.request_id for answer in answers if answer.status == 200})
    row_of = {answer.request_id: answer.row for answer in answers}
    logged_rows = logged["request_id"].map(row_of).to_numpy()
    shadowed = logged[logged["shadow_version"].notna()]
    print(
        f"\nsoak: {len(answers)} requests in ~{len(SCHEDULE) * STEP_SECONDS} s at {CONNECTIONS} connections, "
        f"{len(failures)} failed, answers by version {dict(versions)}, "
        f"logged by role {dict(Counter(logged['answered_by']))}, {len(shadowed)} shadowed, "
        f"server RSS {warm_mib:.0f} -> {end_mib:.0f} MiB"
    )
    assert not failures, f"{len(failures)} of {len(answers)} requests failed, e.g. {failures[:3]}"
    assert not wrong, f"{len(wrong)} answers differ from pyfunc for their row and version, e.g. {wrong[:3]}"
    assert set(versions) == set(expected), versions
    # Each version answered as champion and as canary, and scored in shadow behind the other.
    answered = logged.groupby(["answered_by", "answered_by_version"]).size()
    assert set(answered.index) == {(role, version) for role in ("champion", "challenger") for version in expected}, answered
    assert set(shadowed["shadow_version"]) == set(expected)
    assert (shadowed["answered_by"] == "champion").all()
    assert (shadowed["shadow_version"] != shadowed["answered_by_version"]).all()
    assert_logged_as_pyfunc(logged, logged_rows, expected, "answered_by_version", "prediction")
    assert_logged_as_pyfunc(shadowed, logged_rows[logged["shadow_version"].notna().to_numpy()], expected, "shadow_version", "shadow_prediction")
    assert end_mib - warm_mib < MAX_GROWTH_MIB, f"server memory grew {end_mib - warm_mib:.0f} MiB"


def assert_logged_as_pyfunc(
    logged: pd.DataFrame, rows: np.ndarray, expected: dict[str, np.ndarray], version_column: str, prediction_column: str
) -> None:
    for version, predictions in expected.items():
        mine = (logged[version_column] == version).to_numpy()
        np.testing.assert_array_equal(
            logged[prediction_column].to_numpy(dtype=np.float64)[mine], predictions[rows[mine]], err_msg=f"{prediction_column} of {version}"
        )
