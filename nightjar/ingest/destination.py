"""The warehouse as a dlt destination: dlt's DuckDB destination, plus a CHECKPOINT after each
file it loads.

A DuckDB connection that stays open for a whole load (nightjar.ingest.pipeline
``warehouse_connection``) otherwise folds every inserted row group into the database file
in one checkpoint when it closes. For a big load that final checkpoint costs more than
checkpointing job by job: at scale M (20 files of 500k events) closing took 8.8 s of an
80 s events load; inserting the same files with a CHECKPOINT after each took 24.2 s / 40.6
CPU-s instead of 28.8 s / 52.3 (BENCHMARKS.md). DuckDB's own
``checkpoint_threshold`` does not trigger here: an optimistically written insert adds only a
few KB to the WAL, and dlt's cursors keep the automatic checkpoint from running."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dlt.common.destination.client import RunnableLoadJob
from dlt.common.storages.load_package import ParsedLoadJobFileName
from dlt.destinations.impl.duckdb.duck import DuckDbClient, DuckDbCopyJob
from dlt.destinations.impl.duckdb.factory import duckdb as duckdb_destination

log = logging.getLogger(__name__)


class CheckpointingCopyJob(DuckDbCopyJob):
    """dlt's parquet/jsonl copy job, followed by a checkpoint of the warehouse."""

    def run(self) -> None:
        super().run()
        try:
            self._sql_client.execute_sql("CHECKPOINT")
        except Exception as exc:  # only costs time later (the close checkpoints anyway)
            log.warning("CHECKPOINT after loading %s failed: %s", self._file_path, exc)


class EventsManifestJob(RunnableLoadJob):
    """The ``events`` job of an events package: its file is the manifest that
    ``nightjar.ingest.discover.events_resource`` wrote; the job reads the landing files it
    names, validates them and inserts the rows into ``raw.events``, ``raw.events_rejected``
    and ``raw.events_load_log`` (``nightjar.ingest.load_job.load_manifest``)."""

    def run(self) -> None:
        from nightjar.ingest.load_job import run_events_job

        sql_client = self._job_client.sql_client
        tables = {t: sql_client.make_qualified_table_name(t) for t in ("events", "events_rejected", "events_load_log")}
        run_events_job(sql_client.native_connection, Path(self._file_path), tables)


class WarehouseClient(DuckDbClient):
    def create_load_job(self, table: Any, file_path: str, load_id: str, restore: bool = False) -> Any:
        if table["name"] == "events" and ParsedLoadJobFileName.parse(file_path).file_format == "jsonl":
            return EventsManifestJob(file_path)
        job = super().create_load_job(table, file_path, load_id, restore)
        if type(job) is DuckDbCopyJob:
            return CheckpointingCopyJob(file_path)
        return job


class warehouse(duckdb_destination):  # noqa: N801 (dlt's destination factories are lower case)
    """``dlt.destinations.duckdb`` with :class:`WarehouseClient`. Its configuration section
    stays ``destination.duckdb``."""

    def __init__(self, credentials: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("destination_name", "duckdb")
        super().__init__(credentials=credentials, **kwargs)

    @property
    def client_class(self) -> type[DuckDbClient]:
        return WarehouseClient
