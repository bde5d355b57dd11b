"""Concurrent clients against a running server: each thread holds one keep-alive connection and posts
rows of the reference data to a predict route until stopped, recording every answer. With
`caller_keys`, every other connection is a caller that names itself (`x-caller-key`), as a canary's
sticky callers do; the others are anonymous."""

import threading
from typing import NamedTuple

import httpx


class Answer(NamedTuple):
    row: int
    status: int  # 0: no HTTP answer at all
    version: str | None
    prediction: float | None
    request_id: str  # or the transport error


class ConcurrentClients:
    def __init__(
        self, base: str, records: list[dict], connections: int, *, path: str = "/predict", caller_keys: bool = False
    ) -> None:
        self.base, self.records, self.connections, self.path = base, records, connections, path
        self.caller_keys = caller_keys
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(offset,)) for offset in range(connections)]

    def __enter__(self) -> "ConcurrentClients":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _loop(self, offset: int) -> None:
        headers = {"x-caller-key": f"soak-caller-{offset}"} if self.caller_keys and offset % 2 == 0 else {}
        with httpx.Client(base_url=self.base, timeout=10, headers=headers) as client:
            position = offset
            while not self._stop.is_set():
                row = position % len(self.records)
                try:
                    response = client.post(self.path, json=self.records[row])
                    body = response.json() if response.status_code == 200 else {}
                    prediction = (body.get("predictions") or [None])[0]
                    self.answers.append(Answer(row, response.status_code, body.get("model_version"), prediction, body.get("request_id", "")))
                except httpx.HTTPError as error:
                    self.answers.append(Answer(row, 0, None, None, repr(error)))
                position += self.connections
