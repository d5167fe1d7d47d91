"""The raw layer as a parquet lake (engine=spark): dlt's ``filesystem`` destination at
``settings.lake_url``, dataset ``raw``, one folder of parquet files per table
(``<lake>/raw/<table>/<load_id>.<file_id>.parquet``), readable by Spark and by DuckDB's
``read_parquet``.

The events job is the same as on the warehouse (:func:`nightjar.ingest.load_job.run_events_job`:
same reading, same validation query, same quarantine and load log), run against a
scratch in-memory DuckDB whose tables have the warehouse's DDL; when the job is done, each
table is written to the lake as parquet with the Arrow schema dlt itself writes for it.
File names are fixed by the job (load id + dlt's file id), so a job replayed after a crash
first removes what an earlier attempt wrote and then writes the same rows again: nothing
twice. dlt writes the pipeline state and ``_dlt_loads`` only when every job of a package
is done (``FilesystemClient.complete_load``), so the loaded-files state never gets ahead of
the rows.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dlt.common.storages.load_package import ParsedLoadJobFileName
from dlt.destinations.impl.filesystem.factory import filesystem as filesystem_destination
from dlt.destinations.impl.filesystem.filesystem import FilesystemClient, FilesystemLoadJob
from dlt.destinations.path_utils import normalize_path_sep

from nightjar.ingest.discover import EVENTS_COLUMNS, LOAD_LOG_COLUMNS, REJECTED_COLUMNS
from nightjar.ingest.load_job import FILE_FAULTS, LOAD_LOG_SCHEMA, FileResult, load_results, run_events_job
from nightjar.ingest.validate import EVENTS_SCHEMA, REJECTED_SCHEMA

log = logging.getLogger(__name__)

LAYOUT = "{table_name}/{load_id}.{file_id}.{ext}"
# rows per parquet file of the events job (larger loads are split: Spark reads files in parallel)
ROWS_PER_FILE = 2_000_000
_READ_BATCH = 250_000

_DDL_TYPES = {"text": "VARCHAR", "bigint": "BIGINT", "timestamp": "TIMESTAMPTZ", "json": "JSON"}


def _lake_schema(schema: pa.Schema, columns: dict[str, dict]) -> pa.Schema:
    """The Arrow schema dlt writes to parquet for a table with these hints (a `json` column
    is a string: parquet and Spark have no JSON type)."""
    return pa.schema([f.with_nullable(columns[f.name].get("nullable", True)) for f in schema])


# table -> (dlt column hints, parquet schema); the load log is written last: once a file's
# log row is in the lake, its events and rejects are too
EVENT_TABLES: dict[str, tuple[dict[str, dict], pa.Schema]] = {
    "events": (EVENTS_COLUMNS, _lake_schema(EVENTS_SCHEMA, EVENTS_COLUMNS)),
    "events_rejected": (REJECTED_COLUMNS, _lake_schema(REJECTED_SCHEMA, REJECTED_COLUMNS)),
    "events_load_log": (LOAD_LOG_COLUMNS, _lake_schema(LOAD_LOG_SCHEMA, LOAD_LOG_COLUMNS)),
}


def create_scratch_tables(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The three event tables in ``con`` with the DDL dlt gives them in the warehouse, so
    the load job inserts exactly as it does there (JSON columns validate their text)."""
    for table, (columns, _) in EVENT_TABLES.items():
        cols = ", ".join(f'"{name}" {_DDL_TYPES[hint["data_type"]]}{"" if hint.get("nullable", True) else " NOT NULL"}'
                         for name, hint in columns.items())
        con.execute(f'CREATE TABLE "{table}" ({cols})')
    return {t: f'"{t}"' for t in EVENT_TABLES}


class LakeEventsJob(FilesystemLoadJob):
    """The ``events`` job of an events package in the lake: the manifest's files are read,
    validated and quarantined in a scratch DuckDB exactly as in the warehouse, then each
    table is written as parquet files ``<load_id>.<file_id>[_<n>].parquet``."""

    _job_client: "LakeClient"

    def run(self) -> None:
        client = self._job_client
        con = duckdb.connect(config=dict(client.scratch_config))
        try:
            con.execute("SET TimeZone = 'UTC'")
            tables = create_scratch_tables(con)
            run_events_job(con, Path(self._file_path), tables)
            for table, (_, schema) in EVENT_TABLES.items():
                self._write_table(con, table, schema)
        finally:
            con.close()

    def _remote_path(self, table: str, file_id: str) -> str:
        """Where dlt's layout puts a parquet file of ``table`` with this file id."""
        pathlib = self._job_client.config.pathlib
        rel = self.make_remote_file_path(f"{table}.{file_id}.0.parquet")
        return pathlib.join(self._job_client.dataset_path, normalize_path_sep(pathlib, rel))

    def _write_table(self, con: duckdb.DuckDBPyConnection, table: str, schema: pa.Schema) -> None:
        client = self._job_client
        fs = client.fs_client
        file_id = ParsedLoadJobFileName.parse(self._file_path).file_id
        first = self._remote_path(table, file_id)
        folder, stem = os.path.dirname(first), os.path.basename(first).removesuffix(".parquet")
        if client.is_local_filesystem:
            fs.makedirs(folder, exist_ok=True)
        # a job replayed after a crash: remove what the earlier attempt wrote, then write again
        for old in _listing(fs, folder):
            if os.path.basename(old.rstrip("/")).startswith((f"{stem}.", f"{stem}_", f".{stem}")):
                fs.rm(old)
        json_cols = {n for n, h in EVENT_TABLES[table][0].items() if h["data_type"] == "json"}
        cols = ", ".join(f'"{f.name}"::VARCHAR AS "{f.name}"' if f.name in json_cols else f'"{f.name}"'
                         for f in schema)
        reader = con.sql(f'SELECT {cols} FROM "{table}"').to_arrow_reader(_READ_BATCH)
        out = None
        part = rows = 0
        try:
            for batch in reader:
                if out is None or rows >= ROWS_PER_FILE:
                    if out is not None:
                        out.close()
                        part += 1
                    out = _ParquetOut(client, first if not part else self._remote_path(table, f"{file_id}_{part}"),
                                      schema)
                    rows = 0
                out.writer.write_batch(batch.cast(schema))
                rows += batch.num_rows
            if out is None:  # no rows: one empty file, so that the table and its schema exist
                out = _ParquetOut(client, first, schema)
            out.close()
        except BaseException:
            if out is not None:
                out.abort()
            raise


class _ParquetOut:
    """One parquet file being written to the lake. On a local disk it is written under a
    hidden name and renamed when complete, so readers never see half a file (an object
    store shows an object only once its upload completes)."""

    def __init__(self, client: FilesystemClient, path: str, schema: pa.Schema):
        self.path = path
        self.tmp = _hidden(path) + ".tmp" if client.is_local_filesystem else None
        self.handle = open(self.tmp, "wb") if self.tmp else client.fs_client.open(path, "wb")
        self.writer = pq.ParquetWriter(self.handle, schema)

    def close(self) -> None:
        self.writer.close()
        self.handle.close()
        if self.tmp:
            os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if not self.handle.closed:
            self.handle.close()


def _hidden(path: str) -> str:
    return os.path.join(os.path.dirname(path), "." + os.path.basename(path))


def _listing(fs, folder: str) -> list[str]:
    try:
        return list(fs.ls(folder, detail=False))
    except FileNotFoundError:
        return []


class LakeClient(FilesystemClient):
    """dlt's filesystem client; the ``events`` manifest job runs :class:`LakeEventsJob`."""

    scratch_config: tuple[tuple[str, Any], ...] = ()

    def create_dataset(self) -> None:
        # a `raw` folder made by someone else (e.g. a Spark table location created first) is
        # taken over instead of failing the load on "File exists"
        self.fs_client.makedirs(self.dataset_path, exist_ok=True)

    def create_load_job(self, table: Any, file_path: str, load_id: str, restore: bool = False) -> Any:
        if table["name"] == "events" and ParsedLoadJobFileName.parse(file_path).file_format == "jsonl":
            return LakeEventsJob(file_path)
        return super().create_load_job(table, file_path, load_id, restore)


class lake(filesystem_destination):  # noqa: N801 (dlt's destination factories are lower case)
    """``dlt.destinations.filesystem`` with :class:`LakeClient`; ``scratch_config``: the
    DuckDB settings of the events job's scratch database (memory limit, spill folder,
    threads). Its configuration section stays ``destination.filesystem``."""

    # dlt tells explicit arguments from defaults by the signature of this class's __init__
    __orig_base__ = filesystem_destination

    def __init__(self, bucket_url: str, scratch_config: dict | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("destination_name", "filesystem")
        kwargs.setdefault("layout", LAYOUT)
        super().__init__(bucket_url=bucket_url, **kwargs)
        self._scratch_config = tuple((scratch_config or {}).items())

    @property
    def client_class(self) -> type[FilesystemClient]:
        return type("LakeClient", (LakeClient,), {"scratch_config": self._scratch_config})


# ------------------------------------------------------------------------ reading the lake
def table_files(client: FilesystemClient, table: str, load_id: str | None = None) -> list[str]:
    """The parquet files of ``table`` (of one load, with ``load_id``), hidden files excluded."""
    folder = client.get_table_dir(table).rstrip("/\\")
    out = []
    for path in _listing(client.fs_client, folder):
        name = os.path.basename(path.rstrip("/"))
        if name.endswith(".parquet") and not name.startswith(".") and (
                load_id is None or name.startswith(f"{load_id}.")):
            out.append(path)
    return sorted(out)


def read_table(client: FilesystemClient, table: str, schema: pa.Schema, load_id: str | None = None) -> pa.Table:
    parts = []
    for path in table_files(client, table, load_id):
        with client.fs_client.open(path, "rb") as fh:
            parts.append(pq.read_table(fh).cast(schema))
    return pa.concat_tables(parts) if parts else schema.empty_table()


class LakeStore:
    """What :mod:`nightjar.ingest.pipeline` needs from the raw layer, for the lake."""

    append_only = True  # the shop tables are append-only versions (no merge of plain parquet)

    def tables(self, pipeline) -> set[str]:
        """The raw tables that have at least one parquet file."""
        with pipeline.destination_client() as client:
            folder = client.dataset_path
            return {os.path.basename(p.rstrip("/")) for p in _listing(client.fs_client, folder)
                    if table_files(client, os.path.basename(p.rstrip("/")))}

    def load_results(self, pipeline, load_id: str, packages: list[str]) -> list[FileResult]:
        """Per-file results of the events job whose manifest says ``load_id``, from the
        load-log and reject files of ``packages`` (the dlt load ids of the run)."""
        log_parts, rejected_parts = [], []
        with pipeline.destination_client() as client:
            for package in packages:
                log_parts.append(read_table(client, "events_load_log", EVENT_TABLES["events_load_log"][1], package))
                rejected_parts.append(read_table(client, "events_rejected", EVENT_TABLES["events_rejected"][1],
                                                 package))
        log_rows = pa.concat_tables([EVENT_TABLES["events_load_log"][1].empty_table(), *log_parts])
        rejected = pa.concat_tables([EVENT_TABLES["events_rejected"][1].empty_table(), *rejected_parts])
        rejected = rejected.filter(pc.is_in(rejected.column("reason"), pa.array(FILE_FAULTS)))
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.register("events_load_log", log_rows)
            con.register("events_rejected", rejected)
            return load_results(con, load_id, {"events_load_log": "events_load_log",
                                               "events_rejected": "events_rejected"})
        finally:
            con.close()

    def discard_pending(self, pipeline) -> None:
        """Delete every data file the pending packages wrote (file names start with their
        load id); their state and ``_dlt_loads`` entry were never written."""
        pending = set(pipeline.list_normalized_load_packages())
        if not pending:
            return
        with pipeline.destination_client() as client:
            fs = client.fs_client
            for folder in _listing(fs, client.dataset_path):
                table = os.path.basename(folder.rstrip("/"))
                if table.startswith("_dlt") or not fs.isdir(folder):
                    continue
                for path in _listing(fs, folder):
                    name = os.path.basename(path.rstrip("/")).lstrip(".")
                    if any(name.startswith(f"{load_id}.") for load_id in pending):
                        fs.rm(path)

    def drop_replayed(self, pipeline) -> None:
        """Nothing to do: a replayed job rewrites its own files (same names)."""
