"""The deployment ledger: an append-only record of every move of the registry alias.

The registry only knows where the alias points now. The ledger keeps each move: which version took
the alias, from which, when, which Dagster run moved it and what launched that run (a schedule, a
sensor, declarative automation, a person) and why. From it, `serving_at` answers "which model served
at time T" and `stints` lists who held the alias from when to when.

It is one SQLite table: appends from concurrent runs are serialised by SQLite's write lock, and
triggers refuse UPDATE and DELETE, so the history cannot be rewritten through the ledger.
"""

import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, ConfigurableResource, MetadataValue, OpExecutionContext
from pydantic import Field

SCHEDULE_NAME_TAG = "dagster/schedule_name"
SENSOR_NAME_TAG = "dagster/sensor_name"
AUTOMATION_CONDITION_TAG = "dagster/from_automation_condition"
BACKFILL_TAG = "dagster/backfill"
USER_TAG = "user"
# The project's own run tags (source file, drift record, approved version...): kept with each move.
PROJECT_TAG_PREFIX = "mlops/"
LOCK_TIMEOUT_SECONDS = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alias_moves (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    moved_at TEXT NOT NULL,
    model_name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version TEXT,
    previous_version TEXT,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    run_id TEXT,
    job_name TEXT,
    trigger TEXT NOT NULL,
    trigger_name TEXT,
    run_tags TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS alias_moves_by_time ON alias_moves (model_name, alias, moved_at);
CREATE TRIGGER IF NOT EXISTS alias_moves_no_update BEFORE UPDATE ON alias_moves
BEGIN SELECT RAISE(ABORT, 'the deployment ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS alias_moves_no_delete BEFORE DELETE ON alias_moves
BEGIN SELECT RAISE(ABORT, 'the deployment ledger is append-only'); END;
"""


@dataclass(frozen=True)
class RunTrigger:
    """What launched a run: `kind` is schedule, sensor, automation, backfill or manual."""

    kind: str
    name: str | None

    def describe(self) -> str:
        return self.kind if self.name is None else f"{self.kind} {self.name}"


def run_trigger(tags: Mapping[str, str]) -> RunTrigger:
    """Who or what launched a Dagster run, from the tags Dagster sets on it."""
    if SCHEDULE_NAME_TAG in tags:
        return RunTrigger("schedule", tags[SCHEDULE_NAME_TAG])
    if AUTOMATION_CONDITION_TAG in tags:
        return RunTrigger("automation", tags.get(SENSOR_NAME_TAG))
    if SENSOR_NAME_TAG in tags:
        return RunTrigger("sensor", tags[SENSOR_NAME_TAG])
    if BACKFILL_TAG in tags:
        return RunTrigger("backfill", tags[BACKFILL_TAG])
    # Launched by hand: from the UI's launchpad, the CLI or a script (`user` is set where Dagster knows it).
    return RunTrigger("manual", tags.get(USER_TAG))


@dataclass(frozen=True)
class AliasMove:
    """One row of the ledger: `version` took the alias at `moved_at` (None: the alias was removed)."""

    id: int
    moved_at: datetime
    model_name: str
    alias: str
    version: str | None
    previous_version: str | None
    action: str
    reason: str
    run_id: str | None
    job_name: str | None
    trigger: RunTrigger
    run_tags: dict[str, str]


@dataclass(frozen=True)
class Stint:
    """A version's time holding the alias: from `start` until `end` (None while it still holds it)."""

    version: str | None
    start: datetime
    end: datetime | None
    move: AliasMove


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"{moment} has no time zone: the ledger compares instants, pass an aware datetime")
    # Fixed width, UTC: the text sorts in time order, so SQLite compares instants as strings.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _move(row: sqlite3.Row) -> AliasMove:
    return AliasMove(
        id=row["id"],
        moved_at=datetime.fromisoformat(row["moved_at"]),
        model_name=row["model_name"],
        alias=row["alias"],
        version=row["version"],
        previous_version=row["previous_version"],
        action=row["action"],
        reason=row["reason"],
        run_id=row["run_id"],
        job_name=row["job_name"],
        trigger=RunTrigger(row["trigger"], row["trigger_name"]),
        run_tags=json.loads(row["run_tags"]),
    )


class DeploymentLedger(ConfigurableResource):
    """The append-only history of the registry alias, in one SQLite file."""

    path: str = Field(description="The SQLite file of the ledger (MLOPS_LEDGER_PATH); created on first use.")

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_SECONDS, isolation_level=None)) as connection:
            connection.row_factory = sqlite3.Row
            connection.executescript(_SCHEMA)
            yield connection

    def append_from_step(self, context: AssetExecutionContext | OpExecutionContext, **move: Any) -> "AliasMove":
        """`append` for a move a Dagster step made: the run, its job and its tags say who made it."""
        return self.append(**move, run_id=context.run_id, job_name=context.job_name, run_tags=context.run.tags)

    def append(
        self,
        *,
        model_name: str,
        alias: str,
        version: str | None,
        previous_version: str | None,
        action: str,
        reason: str,
        run_id: str | None = None,
        job_name: str | None = None,
        run_tags: Mapping[str, str] | None = None,
        moved_at: datetime | None = None,
    ) -> AliasMove:
        """Record that `version` took `alias` (moved by `action`: deploy, rollback, observed; for live
        evidence challenge, promote or retire), or that the alias was removed (`version` None)."""
        tags = dict(run_tags or {})
        trigger = run_trigger(tags)
        kept_tags = {key: value for key, value in tags.items() if key.startswith(PROJECT_TAG_PREFIX)}
        with self._connection() as connection:
            # IMMEDIATE takes the write lock up front: concurrent appends queue instead of failing mid-way.
            connection.execute("BEGIN IMMEDIATE")
            cursor = connection.execute(
                "INSERT INTO alias_moves (moved_at, model_name, alias, version, previous_version, action, reason,"
                " run_id, job_name, trigger, trigger_name, run_tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _timestamp(moved_at or datetime.now(UTC)),
                    model_name,
                    alias,
                    version,
                    previous_version,
                    action,
                    reason,
                    run_id,
                    job_name,
                    trigger.kind,
                    trigger.name,
                    json.dumps(kept_tags, sort_keys=True),
                ),
            )
            connection.execute("COMMIT")
            row = connection.execute("SELECT * FROM alias_moves WHERE id = ?", (cursor.lastrowid,)).fetchone()
        return _move(row)

    def moves(self, *, model_name: str, alias: str) -> list[AliasMove]:
        """Every move of the alias, oldest first."""
        with self._connection() as connection:
            rows = connection.execute(
                "SELECT * FROM alias_moves WHERE model_name = ? AND alias = ? ORDER BY moved_at, id", (model_name, alias)
            ).fetchall()
        return [_move(row) for row in rows]

    def latest(self, *, model_name: str, alias: str) -> AliasMove | None:
        moves = self.moves(model_name=model_name, alias=alias)
        return moves[-1] if moves else None

    def serving_at(self, moment: datetime, *, model_name: str, alias: str) -> AliasMove | None:
        """The move that put in place the version holding `alias` at `moment` (its `version` answers
        "which model served at T"), or None when nothing held it yet. A move at exactly `moment` counts."""
        with self._connection() as connection:
            row = connection.execute(
                "SELECT * FROM alias_moves WHERE model_name = ? AND alias = ? AND moved_at <= ?"
                " ORDER BY moved_at DESC, id DESC LIMIT 1",
                (model_name, alias, _timestamp(moment)),
            ).fetchone()
        return None if row is None else _move(row)

    def stints(self, *, model_name: str, alias: str) -> list[Stint]:
        """Who held the alias from when to when, oldest first."""
        moves = self.moves(model_name=model_name, alias=alias)
        ends = [following.moved_at for following in moves[1:]] + [None]
        return [Stint(version=move.version, start=move.moved_at, end=end, move=move) for move, end in zip(moves, ends)]


HISTORY_ROWS = 20


def _cell(value: object) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def history_markdown(stints: list[Stint], rows: int = HISTORY_ROWS) -> str:
    """The most recent stints, newest first, as a Markdown table for the asset's page in the UI."""
    lines = ["| version | from (UTC) | until (UTC) | moved by | run | why |", "| --- | --- | --- | --- | --- | --- |"]
    for stint in reversed(stints[-rows:]):
        move = stint.move
        lines.append(
            "| "
            + " | ".join(
                _cell(value)
                for value in (
                    stint.version or "(none)",
                    stint.start.strftime("%Y-%m-%d %H:%M:%S"),
                    stint.end.strftime("%Y-%m-%d %H:%M:%S") if stint.end else "now",
                    f"{move.action} by {move.trigger.describe()}",
                    (move.run_id or "")[:8],
                    move.reason,
                )
            )
            + " |"
        )
    return "\n".join(lines)


def ledger_metadata(ledger: DeploymentLedger, *, model_name: str, alias: str) -> dict[str, object]:
    """What the `deployment_ledger` asset shows: the current holder, the count of moves and the history."""
    stints = ledger.stints(model_name=model_name, alias=alias)
    metadata: dict[str, object] = {
        "alias_moves": len(stints),
        "history": MetadataValue.md(history_markdown(stints)),
        "ledger_path": MetadataValue.path(ledger.path),
    }
    if stints and stints[-1].version is not None:
        current = stints[-1]
        metadata["production_version"] = int(current.version) if current.version.isdigit() else current.version
        metadata["production_since"] = current.start.isoformat()
    return metadata
