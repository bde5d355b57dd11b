"""A bounded soak: two uvicorn workers over loopback, 32 keep-alive connections for 60 s, while the
alias moves back and forth between two versions every few seconds. No request may fail, every answer
must be pyfunc's for its row and the version it names, and the server's memory must stay bounded."""

import time
from collections import Counter
from pathlib import Path

from .conftest import wait_for
from .load import ConcurrentClients
from .test_prediction_equality import records_of
from .test_uvicorn_workers import two_workers  # noqa: F401  (the fixture: `python -m serving --workers 2`)

SOAK_SECONDS = 60
CONNECTIONS = 32
ALIAS_MOVE_SECONDS = 8
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


def test_a_minute_at_32_connections_while_the_alias_moves(two_workers, registry) -> None:  # noqa: F811
    base, model, _, server = two_workers
    frame = registry.frame.dropna().sample(500, random_state=9)
    records = records_of(frame)
    expected = {model.versions[label]: registry.expected(label, frame) for label in ("v1", "v2")}
    moves = 0
    with ConcurrentClients(base, records, CONNECTIONS) as clients:
        answers = clients.answers
        wait_for(lambda: len(answers) > 2000, timeout=60, what="the load to warm up")
        warm_mib = group_rss_mib(server.pid)
        started = time.monotonic()
        while time.monotonic() - started < SOAK_SECONDS:
            time.sleep(ALIAS_MOVE_SECONDS)
            model.move_alias("v2" if moves % 2 == 0 else "v1")
            moves += 1
        end_mib = group_rss_mib(server.pid)

    failures = [answer for answer in answers if answer[1] != 200]
    versions = Counter(answer[2] for answer in answers)
    wrong = [answer for answer in answers if answer[1] == 200 and answer[3] != expected[answer[2]][answer[0]]]
    print(
        f"\nsoak: {len(answers)} requests in ~{SOAK_SECONDS} s at {CONNECTIONS} connections, {len(failures)} failed, "
        f"{moves} alias moves, answers by version {dict(versions)}, server RSS {warm_mib:.0f} -> {end_mib:.0f} MiB"
    )
    assert not failures, f"{len(failures)} of {len(answers)} requests failed, e.g. {failures[:3]}"
    assert not wrong, f"{len(wrong)} answers differ from pyfunc for their row and version, e.g. {wrong[:3]}"
    assert set(versions) == set(expected), versions
    assert end_mib - warm_mib < MAX_GROWTH_MIB, f"server memory grew {end_mib - warm_mib:.0f} MiB"
