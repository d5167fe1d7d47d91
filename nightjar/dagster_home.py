"""The one persistent Dagster instance that `nightjar run`, `make run` and `make ui` share.

Its directory is ``Settings.dagster_home`` (DAGSTER_HOME, default `<data dir>/dagster_home`);
the first use copies the project's instance settings (the one-slot `duckdb_warehouse`
pool) into it.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import socket
from pathlib import Path

from nightjar.settings import REPO_ROOT, Settings

INSTANCE_CONFIG = REPO_ROOT / "dagster_project" / "dagster.yaml"
# DuckDB allows one writing process: every asset that writes the warehouse is in this pool,
# limited to one slot by INSTANCE_CONFIG.
WAREHOUSE_POOL = "duckdb_warehouse"

# Tags on runs started by `nightjar run`: who runs it, so a run whose process died
# (SIGKILL, power loss) can be recognised and closed by the next one.
LAUNCHER_TAG = "nightjar/launched_by"
PID_TAG = "nightjar/pid"
HOST_TAG = "nightjar/host"


def prepare_dagster_home(settings: Settings) -> Path:
    """The instance directory, created on first use. Creation is serialised across
    processes: Dagster creates its SQLite tables when an instance is first opened, and two
    `nightjar run`s started together would both try to."""
    home = settings.dagster_home or settings.data_dir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    ready = home / ".nightjar_initialised"
    if ready.exists():
        return home
    with open(home / ".nightjar_init.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            init_instance(home)
            ready.touch()
    return home


def init_instance(home: Path) -> None:
    """Create the instance's storage and the warehouse pool's limit (from dagster.yaml) now:
    left to the first runs, two runs starting in the same instant can both find no limit
    yet and both take a slot."""
    import dagster as dg

    config = home / "dagster.yaml"
    if not config.exists():
        shutil.copyfile(INSTANCE_CONFIG, config)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)


def launcher_tags() -> dict[str, str]:
    return {LAUNCHER_TAG: "nightjar run", PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def close_orphaned_runs(instance) -> list[str]:
    """Mark `nightjar run` runs of this host whose process is gone as failed and free their
    pool slots: otherwise a killed run would hold the warehouse slot and block every later
    run of the instance. Returns the run ids closed."""
    import dagster as dg

    closed = []
    host = socket.gethostname()
    records = instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING],
                              tags={LAUNCHER_TAG: "nightjar run", HOST_TAG: host})
    )
    for run in records:
        pid = run.tags.get(PID_TAG, "")
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            instance.report_run_failed(run, f"the `nightjar run` process ({pid}) ended without finishing the run")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            closed.append(run.run_id)
    return closed
