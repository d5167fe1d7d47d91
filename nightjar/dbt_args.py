"""The dbt CLI arguments of a nightly (incremental) run, in one place.

The Dagster dbt asset (dagster_project/transform/assets.py) and the benchmark harness
(nightjar/bench) both call :func:`nightly_dbt_args`, so a benchmark measures exactly what
the nightly run does; the harness imports it without loading any Dagster code.

What the arguments do (dbt_project/README.md "Nightly run"):

* ``build --exclude test_type:unit`` — models, seeds and data tests; unit tests check SQL
  logic on fixed inputs, not the data, and run in CI and with every full refresh.
* ``--event-time-start S --event-time-end E`` — data tests of the big tables (the ones with
  an ``event_time`` config: stg_events, int_*, fct_sessions, raw.events) check only the rows
  loaded in [S, E) (dbt_project/macros/get_where_subquery.sql). S is one second after the
  newest load already transformed (``max(staging.stg_events._last_loaded_at)``), so the
  window holds exactly the loads this run transforms, however many nights they span.
  Flags rather than ``--vars``: changing vars makes dbt re-parse the whole project.
  No window (every row tested) when the warehouse has no stg_events yet or cannot be read.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

# Every run that is not a full refresh (nightly and backfill): unit tests check the SQL logic
# on fixed inputs, not the data; they run in CI and with every full refresh.
INCREMENTAL_BUILD_ARGS = ("build", "--exclude", "test_type:unit")

# click.DateTime's format (the event-time flags take no fractional seconds).
_FLAG_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def transformed_until(warehouse: Path | str) -> datetime | None:
    """The newest raw load time already transformed into staging.stg_events (naive UTC),
    or None when there is none or the warehouse cannot be read."""
    import duckdb  # only this helper needs the driver

    path = Path(warehouse)
    if not path.exists():
        return None
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return None
    try:
        row = con.execute("select max(_last_loaded_at) from staging.stg_events").fetchone()
    except duckdb.Error:  # no stg_events yet: the first run
        return None
    finally:
        con.close()
    value = row[0] if row else None
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def nightly_dbt_args(warehouse: Path | str | None = None, *, now: datetime | None = None) -> list[str]:
    """dbt CLI arguments of the nightly run against ``warehouse`` (default: the configured
    one). Read the warehouse before dbt starts (and while holding the warehouse lock):
    the test window starts after what is already transformed."""
    if warehouse is None:
        from nightjar.settings import get_settings

        warehouse = get_settings().warehouse
    args = list(INCREMENTAL_BUILD_ARGS)
    since = transformed_until(warehouse)
    if since is None:
        return args
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is not None:
        now = now.astimezone(timezone.utc).replace(tzinfo=None)
    start = since.replace(microsecond=0) + timedelta(seconds=1)
    # open-ended in practice: a day past now absorbs clock skew between loader and dbt
    end = max(now, start) + timedelta(days=1)
    return [*args, "--event-time-start", start.strftime(_FLAG_TIME_FORMAT),
            "--event-time-end", end.strftime(_FLAG_TIME_FORMAT)]
