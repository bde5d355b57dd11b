"""Ground truth for logged predictions: the outcome a caller observed later, per request id and row.

Kept in SQLite beside each model's prediction log, `<prediction log>/<model name>/_feedback.sqlite`
(the leading underscore keeps Parquet readers of the log folder, pyarrow's and Spark's, off it).
SQLite and not Parquet because a duplicate must be refused: with several worker processes receiving
feedback, only a primary key checked and written in one transaction refuses the second copy of an id
whichever worker each copy reached; Parquet files would need a read-then-write that two workers can
interleave. Each insert is committed before the answer (WAL, synchronous FULL), so an acknowledged
outcome survives a restart, even a crash.

Table `feedback`, one row per outcome:

    request_id     TEXT     the id of the request the prediction was answered to
    row_index      INTEGER  the record's position in that request (0 for a single record)
    outcome        a number (regression) or a label (classification), as received
    model_version  TEXT     the version that answered the row
    answered_by    TEXT     "champion" or "challenger"
    received_at    TEXT     ISO 8601, UTC
"""

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

FILE_NAME = "_feedback.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    request_id TEXT NOT NULL,
    row_index INTEGER NOT NULL,
    outcome NOT NULL,
    model_version TEXT NOT NULL,
    answered_by TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (request_id, row_index)
) WITHOUT ROWID
"""
# SQLite's limit of bound parameters per statement is 32766 in current builds; stay well under it.
_IDS_PER_QUERY = 500


@dataclass(frozen=True)
class Outcome:
    request_id: str
    row_index: int
    outcome: float | str
    model_version: str
    answered_by: str


class AlreadyReceived(Exception):
    def __init__(self, keys: list[tuple[str, int]]) -> None:
        super().__init__(keys)
        self.keys = keys


class FeedbackStore:
    """One model's outcomes. Every method blocks (SQLite): call them from a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are begun explicitly, IMMEDIATE, so that two workers cannot both
        # find an id absent and then both insert it.
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute(_SCHEMA)
        return connection

    def add(self, outcomes: list[Outcome]) -> None:
        """Store every outcome, or none of them: AlreadyReceived names those stored before."""
        received_at = datetime.now(UTC).isoformat()
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                already = self._existing(connection, [(outcome.request_id, outcome.row_index) for outcome in outcomes])
                if already:
                    raise AlreadyReceived(already)
                connection.executemany(
                    "INSERT INTO feedback VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (o.request_id, o.row_index, o.outcome, o.model_version, o.answered_by, received_at)
                        for o in outcomes
                    ],
                )
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    @staticmethod
    def _existing(connection: sqlite3.Connection, keys: list[tuple[str, int]]) -> list[tuple[str, int]]:
        wanted = set(keys)
        request_ids = sorted({request_id for request_id, _ in keys})
        found: list[tuple[str, int]] = []
        for start in range(0, len(request_ids), _IDS_PER_QUERY):
            chunk = request_ids[start : start + _IDS_PER_QUERY]
            rows = connection.execute(
                f"SELECT request_id, row_index FROM feedback WHERE request_id IN ({','.join('?' * len(chunk))})", chunk
            )
            found.extend(key for key in rows if key in wanted)
        return sorted(found)

    def outcomes(self, request_ids: Iterable[str] | None = None) -> list[Outcome]:
        """The stored outcomes (of these requests, or all)."""
        if not self.path.exists():
            return []
        connection = self._connect()
        try:
            query = "SELECT request_id, row_index, outcome, model_version, answered_by FROM feedback"
            if request_ids is None:
                rows = connection.execute(query + " ORDER BY request_id, row_index").fetchall()
            else:
                ids = sorted(set(request_ids))
                rows = []
                for start in range(0, len(ids), _IDS_PER_QUERY):
                    chunk = ids[start : start + _IDS_PER_QUERY]
                    rows += connection.execute(f"{query} WHERE request_id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
        finally:
            connection.close()
        return [Outcome(*row) for row in rows]
