"""Pipeline construction, run functions and run summaries for the raw layer.

Both pipelines load into dataset ``raw`` of the engine's destination, with their working
directories under ``settings.dlt_pipelines_dir``: engine=duckdb (default) the DuckDB
warehouse at ``settings.warehouse`` (schema ``raw``), engine=spark the parquet lake at
``settings.lake_url`` (``<lake>/raw/<table>/*.parquet``, :mod:`nightjar.ingest.lake`).
:func:`make_pipeline` and :func:`raw_store` are the only places that look at the engine.

The destination is the authority for pipeline state: before each run the local working
state is dropped (unless a previous run left packages that are not loaded yet, which
are then finished first), so dlt restores the state from ``raw._dlt_pipeline_state``.
Deleting the local pipelines dir therefore never causes a reload, and deleting/replacing
the warehouse file (or the lake) never leaves a stale local state that would skip files.
"""
from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import dlt
import duckdb
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from sqlalchemy.engine import make_url as sa_make_url

from nightjar.ingest.destination import warehouse
from nightjar.ingest.discover import (
    EVENTS_COLUMNS, LOAD_LOG_COLUMNS, REJECTED_COLUMNS, EventsRunStats, events_source,
)
from nightjar.ingest.empty_tables import SHOP_PRIMARY_KEYS, SHOP_TABLE_COLUMNS, create_empty_tables, raw_tables
from nightjar.ingest.load_job import BATCH_ROWS, LOAD_LOG_SCHEMA, RETRIED_FAULTS, load_results
from nightjar.ingest.shop import SHOP_TABLES, shop_source
from nightjar.ingest.validate import EVENTS_SCHEMA, REJECTED_SCHEMA
from nightjar.settings import Settings, get_settings
from nightjar.warehouse_lock import warehouse_lock

log = logging.getLogger(__name__)

DATASET = "raw"
EVENTS_PIPELINE = "nightjar_events"
SHOP_PIPELINE = "nightjar_shop"
SHOP_TABLE_NAMES = [*SHOP_TABLES, "order_items"]


def make_pipeline(name: str, settings: Settings, connection: duckdb.DuckDBPyConnection | None = None) -> dlt.Pipeline:
    """The dlt pipeline ``name`` into the engine's raw layer: the warehouse, or with
    engine=spark the lake. With ``connection`` (an open connection to the warehouse, see
    :func:`warehouse_connection`) dlt borrows cursors of it and never opens or closes the
    database itself."""
    settings.dlt_pipelines_dir.mkdir(parents=True, exist_ok=True)
    if settings.engine == "spark":
        from nightjar.ingest.lake import lake

        # the events job's scratch DuckDB gets the warehouse's memory limit and spill folder
        destination = lake(settings.lake_url, scratch_config=settings.duckdb_config())
    else:
        settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
        credentials = (
            DuckDbCredentials(connection)
            if connection is not None
            # memory_limit / temp_directory / threads from settings (NIGHTJAR_DUCKDB_*), so a big
            # load spills to disk instead of running out of memory
            else DuckDbCredentials(str(settings.warehouse), global_config=settings.duckdb_config())
        )
        destination = warehouse(credentials)
    pipeline = dlt.pipeline(
        pipeline_name=name,
        destination=destination,
        dataset_name=DATASET,
        pipelines_dir=str(settings.dlt_pipelines_dir),
    )
    if pipeline.has_pending_data:
        log.warning("pipeline %s has packages from an interrupted run; finishing them first", name)
    else:
        pipeline = pipeline.drop()  # state comes back from the warehouse on run
    return pipeline


@contextmanager
def warehouse_connection(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """One connection to the warehouse for a whole dlt run, closed at the end.

    Left to itself, dlt opens the database for each step and load job and closes it when
    the last cursor is returned; every close of a DuckDB file checkpoints it and every
    open reads its catalog again: in a cProfile of a nightly events load at scale M (a few
    small jobs into a 3 GB warehouse) 9 closes took 2.0 s of 5.5 s (BENCHMARKS.md)."""
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    connection = duckdb.connect(str(settings.warehouse), config=settings.duckdb_config())
    try:
        yield connection
    finally:
        connection.close()


class WarehouseStore:
    """What the run functions need from the raw layer, for the DuckDB warehouse."""

    append_only = False  # dlt merges the shop tables on their primary keys

    def __init__(self, connection: duckdb.DuckDBPyConnection):
        self.connection = connection

    def tables(self, pipeline: dlt.Pipeline) -> set[str]:
        return raw_tables(self.connection, DATASET)

    def load_results(self, pipeline: dlt.Pipeline, load_id: str, packages: list[str]):
        return load_results(self.connection, load_id, _event_tables())

    def discard_pending(self, pipeline: dlt.Pipeline) -> None:
        _discard_pending(pipeline, self.connection)

    def drop_replayed(self, pipeline: dlt.Pipeline) -> None:
        _drop_replayed_rows(pipeline)


@contextmanager
def raw_store(settings: Settings) -> Iterator[tuple[Any, duckdb.DuckDBPyConnection | None]]:
    """``(store, connection)`` for one run: the warehouse with one open connection
    (:class:`WarehouseStore`), or with engine=spark the lake (``LakeStore``, no connection)."""
    if settings.engine == "spark":
        from nightjar.ingest.lake import LakeStore

        yield LakeStore(), None
        return
    with warehouse_connection(settings) as connection:
        yield WarehouseStore(connection), connection


def _load_id(info: Any) -> str | None:
    ids = list(getattr(info, "loads_ids", []) or [])
    return ids[-1] if ids else None


def load_events(settings: Settings | None = None, *, batch_rows: int = BATCH_ROWS) -> dict:
    """Load landing files not loaded before into raw.events / events_rejected / events_load_log.

    Holds the warehouse writer lock (nightjar.warehouse_lock): overlapping runs in other
    processes wait instead of failing on DuckDB's file lock or racing on dlt state."""
    settings = settings or get_settings()
    with warehouse_lock(settings.warehouse, purpose="load_events"):
        return _load_events(settings, batch_rows)


def _load_events(settings: Settings, batch_rows: int) -> dict:
    started = time.perf_counter()
    # One load job at a time: DuckDB already runs each job's inserts on all threads, and
    # dlt's default of 20 parallel jobs would multiply the memory they need.
    os.environ.setdefault(f"{EVENTS_PIPELINE.upper()}__LOAD__WORKERS", "1")
    stats = EventsRunStats()
    with raw_store(settings) as (store, connection):
        pipeline = make_pipeline(EVENTS_PIPELINE, settings, connection)
        if pipeline.has_pending_data:
            pipeline = _finish_or_discard_pending(pipeline, settings, store, connection)
        info = pipeline.run(
            events_source(settings.events_dir, stats, batch_rows, settings.future_skew_hours,
                          {"max_file_bytes": settings.max_file_bytes, "max_file_lines": settings.max_file_lines,
                           "max_line_bytes": settings.max_line_bytes,
                           "earliest_event_date": settings.earliest_event_time.isoformat()},
                          settings.segment_dir),
            loader_file_format="parquet",
        )
        info.raise_on_failed_jobs()
        # the load job stored each file's counts with its rows (raw.events_load_log)
        counted = {}
        if stats.load_id and stats.files:
            counted = {r.file: r for r in store.load_results(pipeline, stats.load_id, list(info.loads_ids))}
        # no landing files yet (an orders-only shop): the tables dbt's sources read, empty
        created = create_empty_tables(pipeline, store.tables(pipeline), EMPTY_EVENT_TABLES)
    for f in stats.files:
        if f.file in counted:
            r = counted[f.file]
            f.lines_read, f.rows_loaded, f.rows_rejected, f.fault, f.error = (
                r.lines_read, r.rows_loaded, r.rows_rejected, r.fault, r.error)
    files = [f.as_dict() for f in stats.files]
    summary = {
        "pipeline": EVENTS_PIPELINE,
        "load_id": stats.load_id if stats.files else _load_id(info),
        "files_loaded": sum(1 for f in stats.files if f.fault not in RETRIED_FAULTS),
        "files_failed": sum(1 for f in stats.files if f.fault in RETRIED_FAULTS),
        "files_already_loaded": stats.files_already_loaded,
        "files_faulty_unchanged": list(stats.faulty_unchanged),
        "lines_read": sum(f.lines_read for f in stats.files),
        "rows_loaded": sum(f.rows_loaded for f in stats.files),
        "rows_rejected": sum(f.rows_rejected for f in stats.files),
        "files": files,
        "warnings": list(stats.warnings),
        "empty_tables_created": created,
        "seconds": round(time.perf_counter() - started, 3),
    }
    log.info(
        "events: %d files, %d lines -> %d loaded, %d rejected (load %s)",
        summary["files_loaded"], summary["lines_read"], summary["rows_loaded"],
        summary["rows_rejected"], summary["load_id"],
    )
    return summary


def _finish_or_discard_pending(pipeline: dlt.Pipeline, settings: Settings, store: Any,
                               connection: duckdb.DuckDBPyConnection | None) -> dlt.Pipeline:
    """Finish the packages an interrupted run left; a package that fails again is discarded
    instead of blocking every later night: the rows its events job wrote (its load time and
    load id) and its uncommitted pipeline state are deleted, the package is dropped, and the
    local state comes back from the warehouse, so its files are taken afresh by this run
    (nothing lost, nothing counted twice). Returns the pipeline to run."""
    try:
        pipeline.normalize()
        pipeline.load()
    except Exception as exc:  # noqa: BLE001 - logged, then the package is discarded
        log.error("pipeline %s: an interrupted load package failed again (%s); discarding it, "
                  "its files are loaded afresh", pipeline.pipeline_name, exc)
        store.discard_pending(pipeline)
        pipeline.drop_pending_packages(with_partial_loads=True)
        return make_pipeline(EVENTS_PIPELINE, settings, connection)
    store.drop_replayed(pipeline)
    return pipeline


def _discard_pending(pipeline: dlt.Pipeline, connection: duckdb.DuckDBPyConnection) -> None:
    """Delete what the pending (normalized) packages wrote to the warehouse: the events rows
    of their manifests and their pipeline state rows (their ``_dlt_loads`` row was never
    written: a package is complete only when all its jobs are)."""
    from nightjar.ingest.load_job import undo_manifest

    normalized = Path(pipeline.working_dir) / "load" / "normalized"
    existing = {r[0] for r in connection.execute(
        "select table_name from information_schema.tables where table_schema = ?", [DATASET]).fetchall()}
    for package in sorted(normalized.glob("*")) if normalized.is_dir() else []:
        for manifest in package.glob("*_jobs/events.*.jsonl"):
            if set(_event_tables()) - {"events"} <= existing and "events" in existing:
                try:
                    undo_manifest(connection, manifest, _event_tables())
                except (ValueError, KeyError) as exc:  # an unreadable manifest wrote nothing
                    log.warning("manifest %s unreadable (%s); nothing to undo", manifest.name, exc)
        if "_dlt_pipeline_state" in existing:
            connection.execute(f"delete from {DATASET}._dlt_pipeline_state where _dlt_load_id = ?",
                               [package.name])


# The event tables as the events resource declares them (nightjar.ingest.discover), for
# create_empty_tables.
EMPTY_EVENT_TABLES = {
    "events": (EVENTS_SCHEMA, EVENTS_COLUMNS, {"write_disposition": "append"}),
    "events_rejected": (REJECTED_SCHEMA, REJECTED_COLUMNS, {"write_disposition": "append"}),
    "events_load_log": (LOAD_LOG_SCHEMA, LOAD_LOG_COLUMNS, {"write_disposition": "append"}),
}
EMPTY_SHOP_TABLES = {
    t: (None, SHOP_TABLE_COLUMNS[t], {"write_disposition": "merge", "primary_key": SHOP_PRIMARY_KEYS[t]})
    for t in SHOP_TABLE_NAMES
}

# Columns that identify one row of one load package in the append-only event tables.
_EVENT_TABLE_ROW_KEYS = {
    "events": "_file, _line, _loaded_at",
    "events_rejected": "_file, _line, reason, _loaded_at",
    "events_load_log": "_file, load_id",
}


def _event_tables() -> dict[str, str]:
    return {t: f"{DATASET}.{t}" for t in _EVENT_TABLE_ROW_KEYS}


def _drop_replayed_rows(pipeline: dlt.Pipeline) -> None:
    """Undo the double insert a crash can cause in the append-only event tables.

    dlt finishes an interrupted package job by job; a job whose rows reached DuckDB just
    before the kill, but which was not yet marked complete, is inserted again. Its copies
    are identical in every column (same file, line and load time), so they are removed.
    Only runs after a resumed package, i.e. after a crash: a full scan is fine there.
    """
    with pipeline.sql_client() as client:
        existing = {r[0] for r in client.execute_sql(
            "select table_name from information_schema.tables where table_schema = %s", DATASET
        )}
        for table, key in _EVENT_TABLE_ROW_KEYS.items():
            if table not in existing:
                continue
            client.execute_sql(
                f"delete from {DATASET}.{table} where rowid in (select rowid from ("
                f"select rowid, row_number() over (partition by {key} order by rowid) as copy"
                f" from {DATASET}.{table}) where copy > 1)"
            )


def load_shop(
    settings: Settings | None = None,
    *,
    schema: str | None = None,
    backend: str = "pyarrow",
) -> dict:
    """Incrementally merge the shop tables into raw.customers/products/orders/order_items.

    Holds the warehouse writer lock, like :func:`load_events`."""
    settings = settings or get_settings()
    with warehouse_lock(settings.warehouse, purpose="load_shop"):
        return _load_shop(settings, schema, backend)


def _load_shop(settings: Settings, schema: str | None, backend: str) -> dict:
    started = time.perf_counter()
    # _dlt_load_id on Arrow rows, for this pipeline only (dlt config is scoped by pipeline name)
    os.environ.setdefault(
        f"{SHOP_PIPELINE.upper()}__NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID", "true"
    )
    if not settings.has_shop_db:
        return _no_shop(settings, started)
    _check_shop_file(settings.shop_db_url)
    with raw_store(settings) as (store, connection):
        pipeline = make_pipeline(SHOP_PIPELINE, settings, connection)
        source = shop_source(settings.shop_db_url, schema=schema, backend=backend)
        if store.append_only:
            # plain parquet cannot be merged: each extracted row is appended as a new version
            # (staging keeps the latest per primary key); the primary key hints stay
            for resource in source.resources.values():
                resource.apply_hints(write_disposition="append")
        info = pipeline.run(source, loader_file_format="parquet")
        info.raise_on_failed_jobs()
    counts: dict[str, int] = {}
    norm = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    if norm is not None:
        counts = dict(norm.row_counts)
    rows = {t: int(counts.get(t, 0)) for t in SHOP_TABLE_NAMES}
    summary = {
        "pipeline": SHOP_PIPELINE,
        "shop_db": True,
        "load_id": _load_id(info),
        "rows": rows,
        "rows_total": sum(rows.values()),
        "seconds": round(time.perf_counter() - started, 3),
    }
    log.info("shop: %s (load %s)", rows, summary["load_id"])
    return summary


def _no_shop(settings: Settings, started: float) -> dict:
    """An events-only shop: no shop database to read. The raw shop tables are created empty
    (once), so the dbt sources and the order marts exist, empty."""
    with raw_store(settings) as (store, connection):
        pipeline = make_pipeline(SHOP_PIPELINE, settings, connection)
        tables = EMPTY_SHOP_TABLES
        if store.append_only:
            tables = {t: (schema, columns, {**hints, "write_disposition": "append"})
                      for t, (schema, columns, hints) in tables.items()}
        created = create_empty_tables(pipeline, store.tables(pipeline), tables)
    log.info("shop: no shop database (NIGHTJAR_SHOP_DB_URL unset and no %s); raw shop tables stay empty",
             settings.data_dir / "shop.sqlite")
    return {
        "pipeline": SHOP_PIPELINE,
        "shop_db": False,
        "load_id": None,
        "rows": {t: 0 for t in SHOP_TABLE_NAMES},
        "rows_total": 0,
        "empty_tables_created": created,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _check_shop_file(url: str) -> None:
    """A configured SQLite shop that does not exist is an error: SQLAlchemy would create an
    empty file and the load would fail later on a missing table, less clearly."""
    parsed = sa_make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).exists():
        raise FileNotFoundError(f"shop database {parsed.database} (NIGHTJAR_SHOP_DB_URL) does not exist")
