"""Which version answers a project's requests: the champion (`production`) alone, a canary share for
the challenger, or the challenger in the shadow of the champion.

A project's policy is a small JSON file, `<MLOPS_SERVING_STATE_DIR>/traffic/<project>.json`:

    {"mode": "off" | "canary" | "shadow", "canary_share": 0.1, "updated_at": "2026-...Z"}

A file rather than memory because the workers are separate processes and the policy must outlive a
restart: PUT /admin/models/{project}/traffic writes it (atomically: a temporary file renamed), and
every worker notices the change within a poll tick by its stat. The Dagster side may write the same
file with `write_policy` (no server needed); no file means mode `off`.

Canary: a request carrying a caller key (header `x-caller-key`) goes to the challenger when the hash
of project and key falls below the share, so one caller always lands on the same side, in every
worker and across restarts; a request without one is drawn at random.
"""

import hashlib
import logging
import os
import random
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import msgspec

logger = logging.getLogger("serving.traffic")

CALLER_KEY_HEADER = "x-caller-key"
_HASH_SPACE = float(1 << 64)


class TrafficMode(StrEnum):
    OFF = "off"
    CANARY = "canary"
    SHADOW = "shadow"


class TrafficPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A project's traffic policy, as PUT /admin/models/{project}/traffic takes it and the file keeps it."""

    mode: TrafficMode = TrafficMode.OFF
    # The share of requests the challenger answers in canary mode (0 to 1); ignored otherwise.
    canary_share: float = 0.0
    updated_at: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.canary_share <= 1.0:
            raise ValueError(f"canary_share must be between 0 and 1, not {self.canary_share}")


OFF = TrafficPolicy()
_decode_policy = msgspec.json.Decoder(TrafficPolicy).decode


def policy_path(state_dir: Path, project: str) -> Path:
    return state_dir / "traffic" / f"{project}.json"


def read_policy(state_dir: Path, project: str) -> TrafficPolicy:
    """The stored policy of a project; `off` when none was ever set (or it cannot be read: logged)."""
    try:
        return _decode_policy(policy_path(state_dir, project).read_bytes())
    except FileNotFoundError:
        return OFF
    except (OSError, msgspec.DecodeError, ValueError) as error:
        logger.error("traffic policy of %s unreadable, serving the champion alone: %s", project, error)
        return OFF


def write_policy(state_dir: Path, project: str, mode: str, canary_share: float = 0.0) -> TrafficPolicy:
    """Store a project's policy where every worker of the server reads it; returns what was stored."""
    policy = TrafficPolicy(TrafficMode(mode), float(canary_share), datetime.now(UTC).isoformat())
    path = policy_path(state_dir, project)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(msgspec.json.encode(policy))
    os.replace(temporary, path)
    return policy


class FollowedPolicy:
    """One worker's copy of a project's policy, re-read when its file changes (`refresh`, each poll tick)."""

    def __init__(self, state_dir: Path, project: str) -> None:
        self._state_dir = state_dir
        self._project = project
        self._signature: tuple[int, int, int] | None = None
        self.policy = OFF
        self.refresh()

    def refresh(self) -> None:
        try:
            stat = policy_path(self._state_dir, self._project).stat()
            signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            signature = None
        if signature != self._signature:
            self._signature = signature
            previous, self.policy = self.policy, read_policy(self._state_dir, self._project)
            if previous != self.policy:
                logger.info("traffic of %s: %s (share %.3g)", self._project, self.policy.mode, self.policy.canary_share)

    def store(self, mode: str, canary_share: float) -> TrafficPolicy:
        """Write the policy (for every worker) and take it on at once in this one."""
        write_policy(self._state_dir, self._project, mode, canary_share)
        self.refresh()
        return self.policy


def challenger_answers(policy: TrafficPolicy, project: str, caller_key: str | None) -> bool:
    """Whether the challenger answers this request under a canary policy."""
    share = policy.canary_share
    if share <= 0.0:
        return False
    if share >= 1.0:
        return True
    if caller_key is None:
        return random.random() < share
    return caller_position(project, caller_key) < share


def caller_position(project: str, caller_key: str) -> float:
    """Where a caller falls in [0, 1): the same for every worker and every restart (not Python's hash)."""
    digest = hashlib.blake2b(f"{project}\x00{caller_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _HASH_SPACE
