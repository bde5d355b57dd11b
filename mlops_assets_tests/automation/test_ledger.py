"""The deployment ledger: which model served at any time, who moved it, and a history that cannot be rewritten."""

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mlops_assets.platform.ledger import DeploymentLedger, RunTrigger, run_trigger

MODEL, ALIAS = "housing_price", "production"
START = datetime(2026, 1, 14, 3, 0, tzinfo=UTC)


def record(ledger: DeploymentLedger, version: str, previous: str | None, at: datetime, **fields) -> None:
    ledger.append(
        model_name=MODEL, alias=ALIAS, version=version, previous_version=previous, moved_at=at,
        action=fields.pop("action", "deploy"), reason=fields.pop("reason", "passed the gate"), **fields,
    )


def test_the_ledger_answers_which_model_served_at_any_time(tmp_path: Path):
    ledger = DeploymentLedger(path=str(tmp_path / "ledger.sqlite3"))
    record(ledger, "1", None, START, run_id="run-a", run_tags={"dagster/schedule_name": "daily_housing_refresh"})
    record(ledger, "2", "1", START + timedelta(days=1), run_id="run-b",
           run_tags={"dagster/sensor_name": "new_data_sensor", "mlops/source_file": "/landing/b.csv"})
    record(ledger, "1", "2", START + timedelta(days=2), action="rollback", reason="bad predictions", run_id="run-c")
    # Another alias of the same model is a history of its own.
    ledger.append(model_name=MODEL, alias="staging", version="3", previous_version=None, action="deploy", reason="-",
                  moved_at=START + timedelta(hours=1))

    def served(at: datetime) -> str | None:
        move = ledger.serving_at(at, model_name=MODEL, alias=ALIAS)
        return None if move is None else move.version

    assert served(START - timedelta(seconds=1)) is None
    assert served(START) == "1"
    assert served(START + timedelta(hours=5)) == "1"
    assert served(START + timedelta(days=1)) == "2"
    assert served(START + timedelta(days=1, hours=23, minutes=59)) == "2"
    assert served(START + timedelta(days=30)) == "1"
    # The same instant written in another zone is the same instant.
    assert served((START + timedelta(days=1)).astimezone(ZoneInfo("America/Los_Angeles"))) == "2"

    second = ledger.serving_at(START + timedelta(days=1, hours=2), model_name=MODEL, alias=ALIAS)
    assert (second.trigger, second.run_id, second.previous_version) == (RunTrigger("sensor", "new_data_sensor"), "run-b", "1")
    assert second.run_tags == {"mlops/source_file": "/landing/b.csv"}

    stints = ledger.stints(model_name=MODEL, alias=ALIAS)
    assert [(s.version, s.start, s.end, s.move.action) for s in stints] == [
        ("1", START, START + timedelta(days=1), "deploy"),
        ("2", START + timedelta(days=1), START + timedelta(days=2), "deploy"),
        ("1", START + timedelta(days=2), None, "rollback"),
    ]
    with pytest.raises(ValueError, match="time zone"):
        ledger.serving_at(datetime(2026, 1, 15), model_name=MODEL, alias=ALIAS)


def test_the_history_cannot_be_rewritten(tmp_path: Path):
    ledger = DeploymentLedger(path=str(tmp_path / "ledger.sqlite3"))
    record(ledger, "1", None, START)
    with sqlite3.connect(ledger.path) as connection:
        for statement in ("UPDATE alias_moves SET version = '9'", "DELETE FROM alias_moves"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                connection.execute(statement)
    assert [move.version for move in ledger.moves(model_name=MODEL, alias=ALIAS)] == ["1"]


def test_concurrent_appends_all_land(tmp_path: Path):
    ledger = DeploymentLedger(path=str(tmp_path / "ledger.sqlite3"))

    def deploy_many(worker: int) -> None:
        for index in range(10):
            record(ledger, f"{worker}.{index}", None, START + timedelta(seconds=worker * 100 + index))

    workers = [threading.Thread(target=deploy_many, args=(worker,)) for worker in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    moves = ledger.moves(model_name=MODEL, alias=ALIAS)
    assert len(moves) == 60 and len({move.id for move in moves}) == 60


def test_what_launched_a_run_is_read_from_its_tags():
    assert run_trigger({"dagster/schedule_name": "daily_housing_refresh"}) == RunTrigger("schedule", "daily_housing_refresh")
    assert run_trigger({"dagster/sensor_name": "new_data_sensor"}) == RunTrigger("sensor", "new_data_sensor")
    assert run_trigger(
        {"dagster/sensor_name": "housing_automation", "dagster/from_automation_condition": "true"}
    ) == RunTrigger("automation", "housing_automation")
    assert run_trigger({"user": "ada@example.com"}) == RunTrigger("manual", "ada@example.com")
    assert run_trigger({}) == RunTrigger("manual", None)
