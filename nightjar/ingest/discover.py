"""Which landing files a load takes: the dlt source over the events landing folder
(``<landing>/events/dt=YYYY-MM-DD/*.jsonl[.gz]``) and the Segment exports beside it
(``<landing>/segment-logs/<source-id>/<received-day ms>/*.gz``, :mod:`nightjar.ingest.segment`).

Each file is read once. The list of files already loaded lives in the resource state,
which dlt stores in the destination (``raw._dlt_pipeline_state``) in the *same load
package* as the rows: a file is recorded as loaded exactly when its rows are, so a crash
can neither load a file twice nor lose it.

The resource (dlt's extract step) only lists the files to take and updates the state;
the package's ``events`` job is a manifest of those files, read by the load job
(:mod:`nightjar.ingest.load_job`) in dlt's load step.

Faults found while listing (lstat, open): ``unreadable_file`` (e.g. permission denied,
I/O error), ``not_a_file`` (a directory or other non-regular entry named like a batch
file) and ``symlink`` (a symbolic link named like a batch file or a ``dt=`` folder, or a
path resolving outside the landing folder: never followed, so nothing outside is read).
Such a file goes into the manifest with its fault, so the load job writes its reject row,
but it is *not* recorded as loaded: it is retried when the entry changes (mode, size,
mtime or ctime, e.g. after a ``chmod``), and stays silent (a log warning only) while it
does not.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import dlt

from nightjar.ingest.load_job import BATCH_ROWS, LOAD_LOG_SCHEMA, FileResult, stat_fault
from nightjar.ingest.segment import FILE_SUFFIX as SEGMENT_SUFFIX
from nightjar.ingest.segment import RECEIVED_DAY_RE, SEGMENT_FOLDER
from nightjar.ingest.validate import EVENTS_SCHEMA, FUTURE_SKEW, REJECTED_SCHEMA

log = logging.getLogger(__name__)


class _JsonHintNoise(logging.Filter):
    """dlt warns on every Arrow batch that our `json` hints differ from the Arrow `string`
    columns of `properties`/`context`. That is intended (DuckDB stores them as JSON)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not ("In resource: events, when merging arrow schema" in msg and "hints were different" in msg)


logging.getLogger("dlt").addFilter(_JsonHintNoise())

PARTITION_RE = re.compile(r"^dt=\d{4}-\d{2}-\d{2}$")
FILE_SUFFIXES = (".jsonl.gz", ".jsonl")

_TS = {"data_type": "timestamp", "timezone": True, "precision": 6}


def _column(data_type: str, nullable: bool = True) -> dict:
    """dlt column hints; every timestamp is UTC with microseconds."""
    return {**(_TS if data_type == "timestamp" else {"data_type": data_type}), "nullable": nullable}


# All nullable in the warehouse DDL, although validation guarantees values for event_id,
# event_name, timestamp, received_at, anonymous_id, _file, _line and _loaded_at (and
# stg_events' not_null tests check them again): existing warehouses have these columns
# nullable, and new ones should not differ from them.
EVENTS_COLUMNS = {
    "event_id": _column("text"),
    "event_name": _column("text"),
    "timestamp": _column("timestamp"),
    "received_at": _column("timestamp"),
    "anonymous_id": _column("text"),
    "user_id": _column("text"),
    "session_id": _column("text"),
    "properties": _column("json"),
    "context": _column("json"),
    "_file": _column("text"),
    "_line": _column("bigint"),
    "_loaded_at": _column("timestamp"),
}
REJECTED_COLUMNS = {
    "raw_line": _column("text"),
    "_file": _column("text", nullable=False),
    "_line": _column("bigint"),
    "reason": _column("text", nullable=False),
    "_loaded_at": _column("timestamp", nullable=False),
}
LOAD_LOG_COLUMNS = {
    "_file": _column("text", nullable=False),
    "lines_read": _column("bigint", nullable=False),
    "rows_loaded": _column("bigint", nullable=False),
    "rows_rejected": _column("bigint", nullable=False),
    "load_id": _column("text", nullable=False),
    "_loaded_at": _column("timestamp", nullable=False),
}


@dataclass
class EventsRunStats:
    """Filled in by the resource while it runs; read by :func:`nightjar.ingest.load_events`."""

    load_id: str | None = None
    files: list[FileResult] = field(default_factory=list)
    files_already_loaded: int = 0
    faulty_unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def discover_files(events_dir: Path, stats: EventsRunStats | None = None) -> Iterator[tuple[str, Path]]:
    """Yield ``(relative posix path, path)`` of candidate batch files, sorted. A symlinked
    ``dt=`` folder is yielded itself (not listed), so that it gets its ``symlink`` fault."""
    if not events_dir.is_dir():
        return
    for part in sorted(events_dir.iterdir()):
        if not PARTITION_RE.match(part.name):
            continue
        if part.is_symlink():
            yield part.name, part
            continue
        if not part.is_dir():
            continue
        try:
            entries = sorted(part.iterdir())
        except OSError as exc:
            msg = f"cannot list partition {part.name}: {exc}"
            log.warning(msg)
            if stats is not None:
                stats.warnings.append(msg)
            continue
        for path in entries:
            if path.name.startswith(".") or not path.name.endswith(FILE_SUFFIXES):
                continue  # hidden / in-flight / foreign files are not batches
            yield f"{part.name}/{path.name}", path


def _listing(folder: Path, what: str, stats: EventsRunStats | None) -> list[Path]:
    """The entries of ``folder``, sorted; a folder that cannot be listed is a warning."""
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        msg = f"cannot list {what}: {exc}"
        log.warning(msg)
        if stats is not None:
            stats.warnings.append(msg)
        return []


def discover_segment_files(segment_dir: Path, stats: EventsRunStats | None = None) -> Iterator[tuple[str, Path]]:
    """Yield ``(relative posix path, path)`` of the Segment export files
    ``<segment_dir>/<source-id>/<received-day ms>/*.gz``, sorted; the relative path starts
    with ``segment-logs/<source-id>/``, so ``_file`` tells each row's source. A symlinked
    ``segment-logs``, source or day folder is yielded itself (its ``symlink`` fault)."""
    if segment_dir.is_symlink():
        yield SEGMENT_FOLDER, segment_dir
        return
    if not segment_dir.is_dir():
        return
    for source in _listing(segment_dir, SEGMENT_FOLDER, stats):
        rel_source = f"{SEGMENT_FOLDER}/{source.name}"
        if source.name.startswith("."):
            continue
        if source.is_symlink():
            yield rel_source, source
            continue
        if not source.is_dir():
            continue
        for day in _listing(source, rel_source, stats):
            if not RECEIVED_DAY_RE.match(day.name):
                continue
            rel_day = f"{rel_source}/{day.name}"
            if day.is_symlink():
                yield rel_day, day
                continue
            if not day.is_dir():
                continue
            for path in _listing(day, rel_day, stats):
                if path.name.startswith(".") or not path.name.endswith(SEGMENT_SUFFIX):
                    continue  # hidden / in-flight / foreign files are not exports
                yield f"{rel_day}/{path.name}", path


def probe_file(path: Path, root: Path | None = None) -> tuple[str | None, str | None]:
    """A file-level fault known before reading: ``(fault, message)`` or ``(None, None)``.
    Decided at extract time, because it decides the state (retry later vs loaded).
    ``root``: the landing folder every path read must resolve inside."""
    fault, message = stat_fault(path, root)
    if fault is not None:
        return fault, message
    try:
        open(path, "rb").close()
    except OSError as exc:
        return "unreadable_file", f"{type(exc).__name__}: {exc}"
    return None, None


def _signature(path: Path) -> str:
    try:
        st = os.lstat(path)  # a link's own entry: replacing it by a real file changes this
    except OSError as exc:
        return f"stat-error:{exc.errno}"
    return f"{st.st_mode}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _current_load_id() -> str | None:
    try:
        return dlt.current.load_package()["load_id"]
    except Exception:  # outside of a pipeline run (e.g. iterating the resource directly)
        return None


def _working_dir() -> str | None:
    try:
        return dlt.current.pipeline().working_dir
    except Exception:  # the resource iterated outside a pipeline (tests)
        return None


@dlt.resource(
    name="events",
    write_disposition="append",
    file_format="parquet",
)
def events_resource(
    events_dir: Path,
    stats: EventsRunStats,
    batch_rows: int = BATCH_ROWS,
    future_skew_hours: float = FUTURE_SKEW.total_seconds() / 3600,
    caps: dict | None = None,
    segment_dir: Path | None = None,
):
    """Decides which landing files this load takes and records them in the resource state;
    the rows themselves are read, validated and inserted by the load job of the package
    (:func:`nightjar.ingest.load_job.load_manifest`, run by :mod:`nightjar.ingest.destination`),
    so they go from the landing file into ``raw.events`` without a spool file in between.

    The package holds one manifest (a JSON-lines file imported as the ``events`` job: the
    files, the load time and the batch size) and the table hints of ``events``,
    ``events_rejected`` and ``events_load_log`` (empty Arrow tables, so that dlt creates
    the three tables before the job runs)."""
    state = dlt.current.resource_state()
    loaded_files: dict[str, int] = state.setdefault("files", {})
    faulty: dict[str, str] = state.setdefault("faulty", {})
    load_id = stats.load_id = _current_load_id() or datetime.now(timezone.utc).strftime("%s.%f")
    loaded_at = datetime.now(timezone.utc)
    entries: list[dict] = []
    # native files first, then each Segment source's exports: one state, one manifest
    found = [(rel, path, events_dir, None) for rel, path in discover_files(events_dir, stats)]
    if segment_dir is not None:
        found += [(rel, path, segment_dir, "segment") for rel, path in discover_segment_files(segment_dir, stats)]
    for rel, path, root, layout in found:
        if rel in loaded_files:
            stats.files_already_loaded += 1
            continue
        sig = _signature(path)
        if faulty.get(rel) == sig:
            stats.faulty_unchanged.append(rel)
            log.warning("events file %s still faulty and unchanged since last run; skipped", rel)
            continue
        fault, message = probe_file(path, root)
        stats.files.append(FileResult(rel, fault=fault, error=message))
        if fault is not None:
            log.error("events file %s: %s (%s); will retry when it changes", rel, fault, message)
            entries.append({"file": rel, "fault": fault, "error": message})
            faulty[rel] = sig
            continue
        entry = {"file": rel, "path": str(path)}
        if layout is not None:
            entry.update({"format": layout, "root": str(root)})
        entries.append(entry)
        loaded_files[rel] = _size(path)
        faulty.pop(rel, None)
    if not entries:
        return
    for name, schema, columns in (
        ("events", EVENTS_SCHEMA, EVENTS_COLUMNS),
        ("events_rejected", REJECTED_SCHEMA, REJECTED_COLUMNS),
        ("events_load_log", LOAD_LOG_SCHEMA, LOAD_LOG_COLUMNS),
    ):
        yield dlt.mark.with_hints(
            schema.empty_table(),
            dlt.mark.make_hints(table_name=name, columns=columns, write_disposition="append"),
            create_table_variant=True,
        )
    header = {"load_id": load_id, "loaded_at": loaded_at.isoformat(), "batch_rows": batch_rows,
              "root": str(events_dir), "future_skew_hours": future_skew_hours, **(caps or {})}
    folder = Path(tempfile.mkdtemp(prefix="events-manifest-", dir=_working_dir()))
    try:
        manifest = folder / "events.jsonl"
        manifest.write_text("".join(json.dumps(e) + "\n" for e in [header, *entries]))
        yield _import_manifest(manifest, len(entries))
    finally:  # dlt has linked (or copied) the file into the package by now
        shutil.rmtree(folder, ignore_errors=True)


def _import_manifest(path: Path, entries: int):
    """Import the manifest into the load package as the ``events`` table's jsonl job.

    No hints here: ``dlt.mark.with_file_import`` with hints would set them on the resource
    itself, and a table-variant hint drops the file; the job lands in the resource's own
    table, ``events``, whose hints were yielded just before."""
    from dlt.common.metrics import DataWriterMetrics
    from dlt.extract.extractors import DataItemWithMeta, ImportFileMeta

    metrics = DataWriterMetrics(str(path), entries, path.stat().st_size, 0, 0)
    return DataItemWithMeta(ImportFileMeta(str(path), metrics, "jsonl", None, False), None)


@dlt.source(name="nightjar_events", max_table_nesting=0)
def events_source(events_dir: Path, stats: EventsRunStats, batch_rows: int = BATCH_ROWS,
                  future_skew_hours: float = FUTURE_SKEW.total_seconds() / 3600, caps: dict | None = None,
                  segment_dir: Path | None = None):
    """``caps``: ``max_file_bytes`` / ``max_file_lines`` / ``max_line_bytes`` for the manifest;
    ``segment_dir``: the ``segment-logs`` landing folder of Segment exports (None: none)."""
    return events_resource(Path(events_dir), stats, batch_rows, future_skew_hours, caps,
                           Path(segment_dir) if segment_dir is not None else None)
