"""dlt source over the events landing folder (``<landing>/events/dt=YYYY-MM-DD/*.jsonl[.gz]``).

Each file is read once. The list of files already loaded lives in the resource state,
which dlt stores in the destination (``raw._dlt_pipeline_state``) in the *same load
package* as the rows: a file is recorded as loaded exactly when its rows are, so a crash
can neither load a file twice nor lose it.

How a load runs: the resource (dlt's extract step) only lists the files to take and
updates the state; the package's ``events`` job is a manifest of those files, and its
load job (:func:`load_manifest`, run by the warehouse destination in dlt's load step)
reads each file, validates its lines in DuckDB and inserts them into the warehouse in the
same statement. A job replayed after a crash repeats its rows exactly (same ``_file``,
``_line``, ``_loaded_at``), and ``pipeline._drop_replayed_rows`` removes the copies.

File-level faults never stop the load (good files still land):

* ``corrupt_gzip`` — a truncated/corrupt gzip: every complete line decoded before the
  error is validated and loaded/quarantined as usual; then one extra reject row (at
  ``_line`` = last complete line + 1) records the error and the partial last line. The
  file counts as loaded (landing files never change; a fixed copy must arrive under a
  new name).
* ``unreadable_file`` (e.g. permission denied, I/O error) and ``not_a_file`` (a directory
  or other non-regular entry named like a batch file) — one reject row (``_line`` 0,
  ``raw_line`` = the error message). Found when the file is listed (stat, open); these
  are *not* recorded as loaded: they are retried when the entry changes (mode, size,
  mtime or ctime, e.g. after a ``chmod``), and stay silent (a log warning only) while it
  does not. A file that fails only later, while the load job reads it, gets the same row
  but stays recorded as loaded (logged as an error).

In ``raw.events_load_log`` a file-level fault counts as one rejected record, so
``lines_read = rows_loaded + rows_rejected`` always holds and equals the number of rows
for the file in ``raw.events`` + ``raw.events_rejected`` of that load.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import tempfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import dlt
import pyarrow as pa

try:  # ISA-L's inflate: ~3x zlib's speed on the landing files (BENCHMARKS.md), same format
    from isal import isal_zlib as _inflate
except ImportError:  # a platform without an isal wheel: the standard library's zlib
    _inflate = zlib  # type: ignore[assignment]

from nightjar.ingest.fastpath import LineValidator
from nightjar.ingest.validate import BOM, EVENTS_SCHEMA, MAX_LINE_BYTES, REJECTED_SCHEMA

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
BATCH_ROWS = 500_000  # lines per validation batch: one INSERT into raw.events and one CHECKPOINT each
READ_CHUNK = 1 << 18

_TS = {"data_type": "timestamp", "timezone": True, "precision": 6}
# All nullable in the warehouse DDL, although validation guarantees values for event_id,
# event_name, timestamp, received_at, anonymous_id, _file, _line and _loaded_at (and
# stg_events' not_null tests check them again). Kept from the time dlt imported parquet
# files that DuckDB wrote with optional columns; changing it now would only make new
# warehouses differ from existing ones.
EVENTS_COLUMNS = {
    "event_id": {"data_type": "text", "nullable": True},
    "event_name": {"data_type": "text", "nullable": True},
    "timestamp": {**_TS, "nullable": True},
    "received_at": {**_TS, "nullable": True},
    "anonymous_id": {"data_type": "text", "nullable": True},
    "user_id": {"data_type": "text", "nullable": True},
    "session_id": {"data_type": "text", "nullable": True},
    "properties": {"data_type": "json", "nullable": True},
    "context": {"data_type": "json", "nullable": True},
    "_file": {"data_type": "text", "nullable": True},
    "_line": {"data_type": "bigint", "nullable": True},
    "_loaded_at": {**_TS, "nullable": True},
}
REJECTED_COLUMNS = {
    "raw_line": {"data_type": "text", "nullable": True},
    "_file": {"data_type": "text", "nullable": False},
    "_line": {"data_type": "bigint", "nullable": True},
    "reason": {"data_type": "text", "nullable": False},
    "_loaded_at": {**_TS, "nullable": False},
}
LOAD_LOG_COLUMNS = {
    "_file": {"data_type": "text", "nullable": False},
    "lines_read": {"data_type": "bigint", "nullable": False},
    "rows_loaded": {"data_type": "bigint", "nullable": False},
    "rows_rejected": {"data_type": "bigint", "nullable": False},
    "load_id": {"data_type": "text", "nullable": False},
    "_loaded_at": {**_TS, "nullable": False},
}
LOAD_LOG_SCHEMA = pa.schema(
    [
        pa.field("_file", pa.string(), nullable=False),
        pa.field("lines_read", pa.int64(), nullable=False),
        pa.field("rows_loaded", pa.int64(), nullable=False),
        pa.field("rows_rejected", pa.int64(), nullable=False),
        pa.field("load_id", pa.string(), nullable=False),
        pa.field("_loaded_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


@dataclass
class FileResult:
    file: str
    lines_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    fault: str | None = None
    error: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class EventsRunStats:
    """Filled in by the resource while it runs; read by :func:`nightjar.ingest.load_events`."""

    load_id: str | None = None
    files: list[FileResult] = field(default_factory=list)
    files_already_loaded: int = 0
    faulty_unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def discover_files(events_dir: Path, stats: EventsRunStats | None = None) -> Iterator[tuple[str, Path]]:
    """Yield ``(relative posix path, path)`` of candidate batch files, sorted."""
    if not events_dir.is_dir():
        return
    for part in sorted(events_dir.iterdir()):
        if not PARTITION_RE.match(part.name) or not part.is_dir():
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


def _signature(path: Path) -> str:
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"stat-error:{exc.errno}"
    return f"{st.st_mode}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def read_file(path: Path) -> tuple[bytes, str | None, str | None]:
    """Return ``(content, fault, message)``; content is what could be decoded."""
    fault, message = _stat_fault(path)
    if fault is not None:
        return b"", fault, message
    try:
        fh = open(path, "rb")
    except OSError as exc:
        return b"", "unreadable_file", f"{type(exc).__name__}: {exc}"
    with fh:
        try:
            raw = fh.read()
        except OSError as exc:
            return b"", "unreadable_file", f"{type(exc).__name__}: {exc}"
    if not path.name.endswith(".gz"):
        return raw, None, None
    return gunzip_partial(raw)


def gunzip_partial(raw: bytes) -> tuple[bytes, str | None, str | None]:
    """Decompress (multi-member) gzip data, keeping everything decoded before an error."""
    out: list[bytes] = []
    pos = 0
    while True:
        if pos >= len(raw) or not raw[pos:].strip(b"\x00"):  # done, or trailing zero padding
            return b"".join(out), None, None
        if raw[pos : pos + 2] != b"\x1f\x8b":
            what = "not a gzip file" if pos == 0 else f"garbage after gzip member at byte {pos}"
            return b"".join(out), "corrupt_gzip", f"BadGzipFile: {what}"
        member, end, error = _inflate_member(raw, pos, _inflate)
        if error is not None and _inflate is not zlib:
            # a broken member: decode it again with zlib, which emits every byte it can
            # (ISA-L holds back the last one), so the kept lines and the partial line in the
            # quarantine row are exactly what the data allows
            member, end, error = _inflate_member(raw, pos, zlib)
        out.extend(member)
        if error is not None:
            return b"".join(out), "corrupt_gzip", error
        pos = end


def _inflate_member(raw: bytes, pos: int, lib) -> tuple[list[bytes], int, str | None]:
    """Inflate the gzip member at ``raw[pos:]`` with ``lib`` (zlib's interface): returns
    (decoded chunks, position after the member, error message or None)."""
    out: list[bytes] = []
    d = lib.decompressobj(wbits=31)
    try:
        for start in range(pos, len(raw), READ_CHUNK):
            out.append(d.decompress(raw[start : start + READ_CHUNK]))
            if d.eof:
                break
    except (zlib.error, lib.error) as exc:
        return out, pos, f"zlib.error: {exc}"
    if not d.eof:
        out.append(d.flush())
        return out, pos, "EOFError: compressed file ended before the end-of-stream marker was reached"
    return out, min(len(raw), start + READ_CHUNK) - len(d.unused_data), None


def _current_load_id() -> str | None:
    try:
        return dlt.current.load_package()["load_id"]
    except Exception:  # outside of a pipeline run (e.g. iterating the resource directly)
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
):
    """Decides which landing files this load takes and records them in the resource state;
    the rows themselves are read, validated and inserted by the load job of the package
    (:func:`load_manifest`, run by :mod:`nightjar.ingest.destination`), so they go from
    the landing file into ``raw.events`` without a spool file in between.

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
    for rel, path in discover_files(events_dir, stats):
        if rel in loaded_files:
            stats.files_already_loaded += 1
            continue
        sig = _signature(path)
        if faulty.get(rel) == sig:
            stats.faulty_unchanged.append(rel)
            log.warning("events file %s still faulty and unchanged since last run; skipped", rel)
            continue
        fault, message = probe_file(path)
        stats.files.append(FileResult(rel, fault=fault, error=message))
        if fault is not None:
            log.error("events file %s: %s (%s); will retry when it changes", rel, fault, message)
            entries.append({"file": rel, "fault": fault, "error": message})
            faulty[rel] = sig
            continue
        entries.append({"file": rel, "path": str(path)})
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
    header = {"load_id": load_id, "loaded_at": loaded_at.isoformat(), "batch_rows": batch_rows}
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


def _stat_fault(path: Path) -> tuple[str | None, str | None]:
    """``unreadable_file`` when the entry cannot be stat'ed, ``not_a_file`` when it is not
    a regular file, else ``(None, None)``."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return "unreadable_file", f"{type(exc).__name__}: {exc}"
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        return "not_a_file", f"{path.name} is {kind}"
    return None, None


def probe_file(path: Path) -> tuple[str | None, str | None]:
    """A file-level fault known before reading: ``(fault, message)`` or ``(None, None)``.
    Decided at extract time, because it decides the state (retry later vs loaded)."""
    fault, message = _stat_fault(path)
    if fault is not None:
        return fault, message
    try:
        open(path, "rb").close()
    except OSError as exc:
        return "unreadable_file", f"{type(exc).__name__}: {exc}"
    return None, None


# Per-file results of the load jobs run in this process, by load id: what load_events
# reports. A package finished by a later process reports there instead.
LOAD_RESULTS: dict[str, list[FileResult]] = {}


def load_manifest(con, manifest: Path, tables: dict[str, str]) -> list[FileResult]:
    """The ``events`` load job: read, validate and insert the files of one manifest.

    ``con`` is a connection to the warehouse; ``tables`` maps ``events``,
    ``events_rejected`` and ``events_load_log`` to their qualified names. Valid lines go
    straight from the Arrow lines into ``raw.events`` (:class:`LineValidator`), the others
    into ``raw.events_rejected``; then one ``raw.events_load_log`` row per file. Rows carry
    the manifest's load time, so a job replayed after a crash repeats them exactly and
    ``pipeline._drop_replayed_rows`` removes the copies.

    File-level faults never stop the load: ``corrupt_gzip`` keeps every complete line
    before the error and adds one reject row; a file that became unreadable after the
    extract step gets an ``unreadable_file``/``not_a_file`` row (it is recorded as loaded
    by then, so it is not retried: a rare race, logged as an error)."""
    header, *entries = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    loaded_at = datetime.fromisoformat(header["loaded_at"])
    batch_rows = int(header["batch_rows"])
    validator = LineValidator(loaded_at, con, tables["events"], tables["events_rejected"])
    results: list[FileResult] = []
    try:
        for entry in entries:
            rel = entry["file"]
            res = FileResult(rel)
            results.append(res)
            if "fault" in entry:
                data, fault, message = b"", entry["fault"], entry["error"]
            else:
                data, fault, message = read_file(Path(entry["path"]))
            res.fault, res.error = fault, message
            if fault in ("unreadable_file", "not_a_file"):
                if "fault" not in entry:
                    log.error("events file %s: %s after it was listed (%s); recorded as loaded", rel, fault, message)
                validator.add_reject(f"[{fault}] {message}", rel, 0, fault)
                res.lines_read = 1
                continue
            fragment = None
            if data.startswith(BOM):
                data = data[len(BOM):]
            if fault == "corrupt_gzip":
                cut = data.rfind(b"\n") + 1
                data, fragment = data[:cut], data[cut:]
            for kind, first_no, chunk in _line_chunks(data, batch_rows):
                if kind == "arrow":
                    validator.add_arrow_lines(rel, chunk, first_no)
                elif kind == "text":
                    validator.add_text_lines(rel, chunk, first_no)
                elif kind == "numbered_text":
                    validator.add_text_lines(rel, [t for _, t in chunk], line_numbers=[n for n, _ in chunk])
                else:
                    validator.add_byte_lines(rel, chunk)
                res.lines_read += len(chunk)
                if len(validator) >= batch_rows:
                    validator.flush()
            del data
            if fault == "corrupt_gzip":
                log.error("events file %s: corrupt gzip after line %d (%s); earlier lines kept",
                          rel, res.lines_read, message)
                raw = f"[corrupt_gzip] {message}"
                if fragment:
                    raw += " | partial line: " + fragment.decode("utf-8", "backslashreplace")[:MAX_LINE_BYTES]
                res.lines_read += 1
                validator.add_reject(raw, rel, res.lines_read, "corrupt_gzip")
            if len(validator) >= batch_rows:
                validator.flush()
        validator.flush(wait=True)
        for res in results:
            res.rows_loaded, res.rows_rejected = validator.counts.get(res.file, (0, 0))
            if res.lines_read != res.rows_loaded + res.rows_rejected:  # would be a bug
                raise RuntimeError(f"events file {res.file}: reconciliation failed {res}")
        n = len(results)
        validator.append(tables["events_load_log"], pa.Table.from_arrays(
            [
                pa.array([r.file for r in results], pa.string()),
                pa.array([r.lines_read for r in results], pa.int64()),
                pa.array([r.rows_loaded for r in results], pa.int64()),
                pa.array([r.rows_rejected for r in results], pa.int64()),
                pa.array([header["load_id"]] * n, pa.string()),
                pa.array([loaded_at] * n, LOAD_LOG_SCHEMA.field("_loaded_at").type),
            ],
            schema=LOAD_LOG_SCHEMA,
        ))
        validator.flush(wait=True)  # waits for that append
    finally:
        validator.close()
    LOAD_RESULTS[header["load_id"]] = results
    return results


def _working_dir() -> str | None:
    try:
        return dlt.current.pipeline().working_dir
    except Exception:  # the resource iterated outside a pipeline (tests)
        return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def arrow_lines(data: bytes) -> pa.StringArray | None:
    """The lines of ``data`` (split at ``\\n``; a final newline ends the last line) as one
    Arrow string array, built without a Python object per line: numpy finds the newlines,
    one ``bytes.replace`` drops them, and the offsets point into that buffer. ``None`` when
    the content is not valid UTF-8 (or too large for 32-bit offsets): the caller then
    splits in Python and judges each line."""
    import numpy as np

    if len(data) >= 2**31 - 1:
        return None
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    n = len(newlines) + (0 if not data or data.endswith(b"\n") else 1)
    compact = data.replace(b"\n", b"") if len(newlines) else data  # C memchr/memcpy
    ends = newlines - np.arange(len(newlines))
    offsets = np.empty(n + 1, dtype=np.int32)
    offsets[0] = 0
    offsets[1 : len(newlines) + 1] = ends
    if n > len(newlines):
        offsets[n] = len(compact)
    arr = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(compact))
    try:
        arr.validate(full=True)  # checks UTF-8 of every value (C++)
    except pa.ArrowInvalid:
        return None
    return arr


def _line_chunks(data: bytes, batch_rows: int):
    """Split a file's content into lines (``\\n``; a final newline ends the last line)
    and yield ``(kind, first line number, lines)`` chunks of at most ``batch_rows``.

    kind ``arrow``: consecutive lines as a slice of an Arrow string array (the fast path
    for valid UTF-8); ``text``: consecutive lines as str; ``numbered_text``: (line number,
    str) pairs; ``bytes``: (line number, bytes) pairs of lines that are not valid UTF-8.
    """
    arr = arrow_lines(data)
    if arr is not None:
        for start in range(0, len(arr), batch_rows):
            yield "arrow", start + 1, arr.slice(start, batch_rows)
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        lines_b = data.split(b"\n")
        if lines_b and lines_b[-1] == b"":
            lines_b.pop()
        good, bad = [], []
        for no, line in enumerate(lines_b, 1):
            try:
                good.append((no, line.decode("utf-8")))
            except UnicodeDecodeError:
                bad.append((no, line))
        for start in range(0, len(good), batch_rows):
            yield "numbered_text", None, good[start : start + batch_rows]
        yield "bytes", None, bad
        return
    lines = text.split("\n")
    del text
    if lines and lines[-1] == "":
        lines.pop()
    for start in range(0, len(lines), batch_rows):
        yield "text", start + 1, lines[start : start + batch_rows]


@dlt.source(name="nightjar_events", max_table_nesting=0)
def events_source(events_dir: Path, stats: EventsRunStats, batch_rows: int = BATCH_ROWS):
    return events_resource(Path(events_dir), stats, batch_rows)
