"""Long-running processes side by side, until the user stops them: start each, say where it answers,
watch it, and stop all of them, including whatever they spawned.

Each service runs in its own session, hence its own process group. Stopping a service signals the
whole group, so the code servers the Dagster webserver and daemon start, and uvicorn's workers, stop
with it. It also keeps a Ctrl-C in the terminal away from the services: only the supervisor receives
it, and it stops them in its own way (SIGTERM, a grace period, then SIGKILL).

Nothing here knows Dagster, MLflow or the serving app: `mlops_assets.cli` describes them as `Service`s.
"""

import http.client
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from urllib.parse import urlsplit

LOG_TAIL_LINES = 20
# A service restarted this often within a minute is given up on: it cannot start, restarting will not help.
MAX_RESTARTS_PER_MINUTE = 3
# SIGHUP too: the services, in sessions of their own, would outlive a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class Service:
    name: str
    argv: Sequence[str]
    # Answers 200 once the service is up; None: a running process is all there is to check.
    health_url: str | None = None
    # Added to the supervisor's own environment.
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    # What the user opens, and what it offers.
    url: str | None = None
    about: str = ""
    # A later stage than up (the serving app with a model loaded), reported when it answers 200 but
    # never waited for: it may depend on something that does not exist yet.
    ready_url: str | None = None
    waiting_note: str = ""
    # For a service that speaks no HTTP: true once it is up (and, before it starts, when its address is taken).
    health_check: Callable[[], bool] | None = None
    # Started again when it exits, instead of stopping everything: others can do without it meanwhile.
    restart: bool = False


class ServiceFailed(Exception):
    """A service could not start, exited on its own, or did not answer in time."""


def _say(message: str) -> None:
    print(message, flush=True)


# A proxy from the user's environment must not stand between the supervisor and a local service.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def answers_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with _DIRECT.open(url, timeout=timeout) as response:
            return response.status == 200
    except (OSError, http.client.HTTPException):  # URLError and HTTPError (not 200) are OSErrors
        return False


def listens(url: str, *, default_port: int = 80, timeout: float = 1.0) -> bool:
    """Whether something accepts a TCP connection at the host and port of `url` (any scheme)."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=timeout):
            return True
    except OSError:
        return False


def _group_has_live_members(group_id: int) -> bool:
    try:
        os.killpg(group_id, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    # A zombie still counts as a member for kill(), and nobody may ever reap an orphaned one (the
    # init of a container often does not): only a process that still runs holds a group alive.
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces and parentheses itself.
        state, _parent, process_group = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(process_group) == group_id and state not in ("Z", "X"):
            return True
    return False


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 16_384))
            text = log.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class _Running:
    service: Service
    process: subprocess.Popen
    log_path: Path
    up: bool = False
    ready: bool = False
    next_ready_probe: float = 0.0
    restarts: list[float] = field(default_factory=list)

    @property
    def group_id(self) -> int:
        return self.process.pid  # start_new_session made it the leader of its own group

    def group_alive(self) -> bool:
        self.process.poll()  # reap the leader, or it stays a member as a zombie
        return _group_has_live_members(self.group_id)

    def signal_group(self, signal_number: int) -> None:
        try:
            os.killpg(self.group_id, signal_number)
        except ProcessLookupError:
            pass


class Supervisor:
    """Starts the services on entry and stops all of them on exit, however the block ends.

    `run()` reports each service once it answers, then watches them until SIGINT, SIGTERM or SIGHUP (it
    returns 0) or until one exits or misses its start-up deadline (it raises `ServiceFailed`).
    """

    def __init__(
        self,
        services: Sequence[Service],
        *,
        log_dir: Path,
        start_timeout: float = 300.0,
        stop_timeout: float = 25.0,
        poll_seconds: float = 0.5,
        ready_poll_seconds: float = 2.0,
        say: Callable[[str], None] = _say,
    ) -> None:
        self.services = list(services)
        self.log_dir = log_dir
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.poll_seconds = poll_seconds
        self.ready_poll_seconds = ready_poll_seconds
        self.say = say
        self._running: list[_Running] = []
        self._stop_signal: int | None = None
        self._impatient = False  # a second signal: stop without the grace period
        self._previous_handlers: dict[int, object] = {}

    def __enter__(self) -> "Supervisor":
        self._install_signal_handlers()
        try:
            self._refuse_taken_addresses()
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.say(f"logs of every service: {self.log_dir}")
            for service in self.services:
                self._running.append(self._start(service))
        except BaseException:
            self._stop_all()
            self._restore_signal_handlers()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            self._stop_all()
        finally:
            self._restore_signal_handlers()

    @property
    def stop_requested(self) -> bool:
        return self._stop_signal is not None

    def run(self) -> int:
        deadline = time.monotonic() + self.start_timeout
        all_up = False
        while not self.stop_requested:
            self._fail_on_exited_service()
            for running in self._running:
                if not running.up:
                    self._probe_health(running)
                elif not running.ready and running.service.ready_url:
                    self._probe_readiness(running)
            if not all_up:
                if all(running.up for running in self._running):
                    all_up = True
                    self.say("everything is up; Ctrl-C stops all of it")
                elif time.monotonic() > deadline:
                    late = [running for running in self._running if not running.up]
                    for running in late:
                        self.say(f"{running.service.name} did not answer {running.service.health_url} "
                                 f"within {self.start_timeout:.0f} s; the end of {running.log_path}:\n"
                                 f"{_log_tail(running.log_path)}")  # fmt: skip
                    raise ServiceFailed(f"{', '.join(running.service.name for running in late)} did not come up")
            time.sleep(self.poll_seconds)
        self.say(f"{signal.Signals(self._stop_signal).name} received")
        return 0

    def _install_signal_handlers(self) -> None:
        try:
            for signal_number in STOP_SIGNALS:
                self._previous_handlers[signal_number] = signal.signal(signal_number, self._on_stop_signal)
        except ValueError:
            pass  # not the main thread: whoever runs us there handles signals

    def _restore_signal_handlers(self) -> None:
        for signal_number, handler in self._previous_handlers.items():
            signal.signal(signal_number, handler)
        self._previous_handlers.clear()

    def _on_stop_signal(self, signal_number: int, frame: FrameType | None) -> None:
        if self._stop_signal is None:
            self._stop_signal = signal_number
        else:
            self._impatient = True

    def _refuse_taken_addresses(self) -> None:
        # Another process on the port would answer the health URL in the service's place.
        for service in self.services:
            if service.health_url and listens(service.health_url):
                address = urlsplit(service.health_url).netloc
                raise ServiceFailed(f"{address}, where {service.name} should listen, is taken by another process")
            if service.health_check is not None and service.health_check():
                raise ServiceFailed(f"the address where {service.name} should listen is taken by another process")

    def _start(self, service: Service, *, again: bool = False) -> _Running:
        log_path = self.log_dir / f"{re.sub(r'[^a-z0-9]+', '-', service.name.lower()).strip('-')}.log"
        # Unbuffered, so that the end of a log holds a service's last words when it dies.
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **service.env}
        # A restarted service adds to its log: the end of the previous one says why it died.
        with log_path.open("ab" if again else "wb") as log:
            try:
                process = subprocess.Popen(
                    list(service.argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=environment,
                    cwd=service.cwd,
                    start_new_session=True,
                )
            except OSError as error:
                raise ServiceFailed(f"could not start {service.name} ({service.argv[0]}): {error}") from error
        return _Running(service, process, log_path)

    def _fail_on_exited_service(self) -> None:
        for index, running in enumerate(self._running):
            code = running.process.poll()
            if code is not None:
                how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
                self.say(f"{running.service.name} {how}; the end of {running.log_path}:\n{_log_tail(running.log_path)}")
                if running.service.restart and self._may_restart(running):
                    self._running[index] = self._restart(running)
                    continue
                raise ServiceFailed(f"{running.service.name} {how}")

    def _may_restart(self, running: _Running) -> bool:
        now = time.monotonic()
        return len([moment for moment in running.restarts if now - moment < 60]) < MAX_RESTARTS_PER_MINUTE

    def _restart(self, running: _Running) -> _Running:
        running.signal_group(signal.SIGKILL)  # whatever the dead leader left behind
        self.say(f"starting {running.service.name} again")
        restarted = self._start(running.service, again=True)
        restarted.restarts = [*running.restarts, time.monotonic()]
        return restarted

    def _probe_health(self, running: _Running) -> None:
        service = running.service
        if service.health_url is not None and not answers_ok(service.health_url):
            return
        if service.health_check is not None and not service.health_check():
            return
        running.up = True
        where = service.url or f"running, pid {running.process.pid}"
        line = f"{service.name}: {where}" + (f" ({service.about})" if service.about else "")
        if service.ready_url is not None:
            running.ready = answers_ok(service.ready_url)
            running.next_ready_probe = time.monotonic() + self.ready_poll_seconds
            if not running.ready:
                line += f"; not ready yet: {service.waiting_note or service.ready_url}"
        self.say(line)

    def _probe_readiness(self, running: _Running) -> None:
        if time.monotonic() < running.next_ready_probe:
            return
        running.next_ready_probe = time.monotonic() + self.ready_poll_seconds
        if answers_ok(running.service.ready_url):
            running.ready = True
            self.say(f"{running.service.name} is ready: {running.service.url or running.service.ready_url}")

    def _stop_all(self) -> None:
        alive = [running for running in self._running if running.group_alive()]
        if not alive:
            self._running = []
            return
        self.say(f"stopping {', '.join(running.service.name for running in alive)}")
        for running in alive:
            running.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while alive and time.monotonic() < deadline and not self._impatient:
            time.sleep(0.2)
            alive = [running for running in alive if running.group_alive()]
        reason = "was asked to stop twice" if self._impatient else f"did not stop within {self.stop_timeout:.0f} s"
        for running in alive:
            self.say(f"{running.service.name} {reason}: killing it")
            running.signal_group(signal.SIGKILL)
        kill_deadline = time.monotonic() + 10
        while alive and time.monotonic() < kill_deadline:
            time.sleep(0.1)
            alive = [running for running in alive if running.group_alive()]
        for running in alive:
            self.say(f"{running.service.name}: process group {running.group_id} survived SIGKILL")
        for running in self._running:
            running.process.poll()
        self._running = []
        if not alive:
            self.say("stopped")
