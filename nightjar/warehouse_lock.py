"""A cross-process lock around writers of the DuckDB warehouse.

DuckDB allows one writing process per database file; a second one fails at once with
``IO Error: Could not set lock on file ... Conflicting lock is held``. Dagster's
``duckdb_warehouse`` pool serialises steps *inside one Dagster instance*, but two
``nightjar run`` processes (each an in-process run on its own ephemeral instance), a
cron job next to the UI, or a manual ``dbt build`` are not covered by it. Writers
therefore take this lock first: an exclusive ``fcntl.flock`` on ``<warehouse>.lock``,
waited for (with a timeout and a clear error) instead of failing.

- Re-entrant within a process: nested ``warehouse_lock`` calls of the same thread (e.g.
  ``nightjar run`` holding it while an asset calls ``load_events``) do not deadlock;
  other threads of the same process wait like other processes do.
- Released by the kernel when the holder dies (SIGKILL included): never stale.
- The lock file holds the holder's pid and purpose, for the error message only.
- When the warehouse's directory is not writable, the lock lives in the temp dir
  (keyed by the warehouse path) so that the real error comes from DuckDB.

Usage::

    from nightjar.warehouse_lock import warehouse_lock
    with warehouse_lock(settings.warehouse, purpose="dbt build"):
        ...

or around a command: ``python -m nightjar.warehouse_lock WAREHOUSE -- dbt build ...``.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

DEFAULT_TIMEOUT_SECONDS = 2 * 3600.0
POLL_SECONDS = 0.05


class WarehouseBusyError(TimeoutError):
    """Another process held the warehouse lock for longer than the timeout."""


_registry_guard = threading.Lock()
_locks: dict[str, "_ProcessLock"] = {}


class _ProcessLock:
    def __init__(self, path: Path):
        self.path = path
        self.rlock = threading.RLock()
        self.depth = 0
        self.fd: int | None = None


def lock_path(warehouse: Path | str) -> Path:
    warehouse = Path(warehouse).resolve()
    candidate = warehouse.with_name(warehouse.name + ".lock")
    if os.access(candidate.parent, os.W_OK) or os.access(candidate, os.W_OK):
        return candidate
    digest = hashlib.sha256(str(warehouse).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"nightjar-warehouse-{digest}.lock"


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextmanager
def warehouse_lock(
    warehouse: Path | str,
    *,
    timeout: float | None = DEFAULT_TIMEOUT_SECONDS,
    purpose: str = "",
) -> Iterator[Path]:
    """Hold the exclusive writer lock of ``warehouse`` (wait up to ``timeout`` seconds)."""
    path = lock_path(warehouse)
    with _registry_guard:
        plock = _locks.setdefault(str(path), _ProcessLock(path))
    deadline = None if timeout is None else time.monotonic() + timeout
    if not plock.rlock.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
        raise WarehouseBusyError(f"warehouse {warehouse} is busy: another thread of this process "
                                 f"held its lock for more than {timeout:.0f} s")
    try:
        if plock.depth == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if deadline is not None and time.monotonic() >= deadline:
                            raise WarehouseBusyError(
                                f"warehouse {warehouse} is busy: lock {path} held by "
                                f"[{_holder(path)}] for more than {timeout:.0f} s") from None
                        time.sleep(POLL_SECONDS)
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid {os.getpid()} {purpose}".strip().encode(), 0)
            except BaseException:
                os.close(fd)
                raise
            plock.fd = fd
        plock.depth += 1
        try:
            yield path
        finally:
            plock.depth -= 1
            if plock.depth == 0 and plock.fd is not None:
                fd, plock.fd = plock.fd, None
                try:
                    os.ftruncate(fd, 0)
                except OSError:
                    pass
                os.close(fd)  # releases the flock
    finally:
        plock.rlock.release()


@contextmanager
def locked_connection(warehouse: Path | str, *, config: Mapping[str, str | int], read_only: bool = False,
                      purpose: str = "") -> Iterator:
    """A DuckDB connection to ``warehouse``, opened and closed under its lock.

    ``config`` is the DuckDB configuration of the warehouse (``Settings.duckdb_config()``:
    memory limit, temp directory, threads), so every process stays within the limits.
    Readers take the lock too: DuckDB refuses to open a file another process is writing,
    and a writer's open fails while another process has the file open read-only."""
    import duckdb  # here, so `python -m nightjar.warehouse_lock` stays light

    with warehouse_lock(warehouse, purpose=purpose):
        con = duckdb.connect(str(warehouse), read_only=read_only, config=dict(config))
        try:
            yield con
        finally:
            con.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m nightjar.warehouse_lock WAREHOUSE [--timeout S] -- COMMAND ...``"""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args or args.index("--") < 1:
        print(main.__doc__, file=sys.stderr)
        return 2
    sep = args.index("--")
    head, command = args[:sep], args[sep + 1:]
    timeout = DEFAULT_TIMEOUT_SECONDS
    if "--timeout" in head:
        i = head.index("--timeout")
        timeout = float(head[i + 1])
        del head[i : i + 2]
    with warehouse_lock(head[0], timeout=timeout, purpose=" ".join(command)[:200]):
        return subprocess.call(command)


if __name__ == "__main__":
    raise SystemExit(main())
