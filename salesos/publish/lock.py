"""One run at a time per warehouse: an OS file lock beside the warehouse, with the holder written in it.

`salesos run` holds the lock from start to end; in Airflow, where each task is its own process, every step
that writes (extract, dbt build, the forecast's plan and store, publish) holds it while it runs. The lock
is `fcntl.flock` on `.<warehouse name>.lock`: the OS releases it when the holding process ends, however it
ends, so the lock of a killed run is simply taken by the next one (which logs whose it was). A second run
fails at once with a message naming the run that holds the lock, before it has touched anything.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class RunRefused(RuntimeError):
    """A run that must not start (or go on); the message says why and what to do. Nothing was changed."""


class RunLocked(RunRefused):
    """Another run holds the warehouse."""


# locks this process holds: lock file -> (fd, run id, whole run, depth); a step inside `salesos run` re-enters
_HELD: dict[Path, list[Any]] = {}


def lock_path(warehouse: Path) -> Path:
    return warehouse.parent / f".{warehouse.name}.lock"


def holder(warehouse: Path) -> dict[str, Any] | None:
    """Who holds (or last held) the lock, as written in the lock file."""
    try:
        text = lock_path(warehouse).read_text(encoding="utf-8")
        return json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None


def holds_whole_run(warehouse: Path) -> bool:
    """Whether this process holds the warehouse for a whole run (`salesos run`), not for one Airflow step."""
    held = _HELD.get(lock_path(warehouse))
    return bool(held and held[2])


@contextmanager
def warehouse_lock(warehouse: Path, run_id: str, *, what: str, whole_run: bool = False) -> Iterator[None]:
    """Hold the warehouse's lock for `run_id`; RunLocked at once if another process holds it."""
    path = lock_path(warehouse)
    held = _HELD.get(path)
    if held is not None:
        if held[1] != run_id:
            raise RunLocked(f"{warehouse} is held by run {held[1]} in this process; run {run_id} cannot start")
        held[3] += 1
        try:
            yield
        finally:
            held[3] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        h = holder(warehouse) or {}
        raise RunLocked(
            f"{warehouse} is in use by run {h.get('run_id', '?')} ({h.get('what', '?')}, pid {h.get('pid', '?')} "
            f"on {h.get('host', '?')}, since {h.get('started', '?')}); run {run_id} did not start and changed "
            "nothing. Wait for that run to finish."
        ) from None
    previous = holder(warehouse)
    if previous and previous.get("run_id") != run_id:
        log.info("took the lock of %s; last held by run %s (pid %s), which has ended",
                 warehouse, previous.get("run_id"), previous.get("pid"))
    info = {"run_id": run_id, "what": what, "pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.now(UTC).isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    os.fsync(fd)
    _HELD[path] = [fd, run_id, whole_run, 1]
    try:
        yield
    finally:
        del _HELD[path]
        os.close(fd)  # releases the flock; the holder info stays, for the message of the next one


def relabel(warehouse: Path, run_id: str) -> None:
    """Name the run holding this process's lock anew (`salesos run` picks a fresh run id once it holds it)."""
    held = _HELD[lock_path(warehouse)]
    held[1] = run_id
    info = (holder(warehouse) or {}) | {"run_id": run_id}
    os.ftruncate(held[0], 0)
    os.pwrite(held[0], json.dumps(info).encode(), 0)
    os.fsync(held[0])
