"""The daily partitions of the date-based assets (the dbt models).

A partition is a calendar day in ``NIGHTJAR_TIMEZONE`` (default UTC), from
``NIGHTJAR_PARTITIONS_START`` (default 2024-01-01) to *yesterday*: ``end_offset=0`` makes
the latest partition the last day that has ended, which is the day the nightly run
processes. What a partition means for each asset:

* dbt models: a run for a partition (range) passes its time window to dbt as the vars
  ``backfill_start`` / ``backfill_end`` (UTC); the incremental models then reprocess the
  events in that window (plus anything new), see dbt_project/macros/backfill.sql. The
  nightly run (tag ``nightjar/run_kind=nightly``) passes no window: watermark path only.
* everything else (ingestion, ML, alerts, reports) is unpartitioned and runs in the same
  run as the partitioned dbt asset (Dagster allows unpartitioned assets in a partitioned
  asset job; only *different* partitions definitions are refused).

Settings are read when this module is imported (definitions load), so a change of
``NIGHTJAR_TIMEZONE`` / ``NIGHTJAR_PARTITIONS_START`` takes effect on the next reload.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import dagster as dg

from nightjar.settings import Settings, get_settings

# Run tag that selects the dbt watermark path (no backfill window). Set by the nightly
# schedule and by `nightjar run`; any other partitioned run reprocesses its window.
RUN_KIND_TAG = "nightjar/run_kind"
NIGHTLY = "nightly"


def build_daily_partitions(settings: Settings | None = None) -> dg.DailyPartitionsDefinition:
    s = settings or get_settings()
    return dg.DailyPartitionsDefinition(start_date=s.partitions_start, timezone=s.timezone, end_offset=0)


daily_partitions = build_daily_partitions()


def day_that_ended(at: datetime, tz: str) -> str:
    """The partition key of the calendar day (in `tz`) before the one containing `at`."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    local: date = at.astimezone(ZoneInfo(tz)).date()
    return (local - timedelta(days=1)).isoformat()


def utc_window(window: dg.TimeWindow) -> tuple[str, str]:
    """A partition time window as the UTC 'YYYY-MM-DD HH:MM:SS' strings dbt expects."""
    fmt = "%Y-%m-%d %H:%M:%S"
    return (window.start.astimezone(timezone.utc).strftime(fmt), window.end.astimezone(timezone.utc).strftime(fmt))
