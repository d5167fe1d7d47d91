"""The events load job: read the landing files a manifest names, validate their lines and
insert them into the warehouse.

The manifest is written by the extract step (:mod:`nightjar.ingest.discover`); this job
(:func:`load_manifest`) runs in dlt's load step, started by the warehouse destination
(:mod:`nightjar.ingest.destination`). Each file is read whole, gunzipped if need be, split
into lines and validated in DuckDB inside the ``INSERT`` into ``raw.events``; the other
lines go to ``raw.events_rejected``, then one ``raw.events_load_log`` row per file. A job
replayed after a crash repeats its rows exactly (same ``_file``, ``_line``,
``_loaded_at``), and ``pipeline._drop_replayed_rows`` removes the copies.

File-level faults never stop the load (good files still land):

* ``corrupt_gzip`` — a truncated/corrupt gzip: every complete line decoded before the
  error is validated and loaded/quarantined as usual; then one extra reject row (at
  ``_line`` = last complete line + 1) records the error and the partial last line. The
  file counts as loaded (landing files never change; a fixed copy must arrive under a
  new name).
* ``unreadable_file`` / ``not_a_file`` / ``symlink`` — one reject row (``_line`` 0,
  ``raw_line`` = the error message; for ``symlink`` the link and its target, never the
  content: a symlinked file or ``dt=`` folder, or a path resolving outside the landing
  folder, is not read). Usually found when the file is listed (see :mod:`nightjar.ingest.discover`);
  a file that fails only here, while the job reads it, gets the same row but stays
  recorded as loaded (logged as an error).

In ``raw.events_load_log`` a file-level fault counts as one rejected record, so
``lines_read = rows_loaded + rows_rejected`` always holds and equals the number of rows
for the file in ``raw.events`` + ``raw.events_rejected`` of that load.
:func:`load_results` reads a load's per-file results back from those tables.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import stat
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa

try:  # ISA-L's inflate: ~3x zlib's speed on the landing files (BENCHMARKS.md), same format
    from isal import isal_zlib as _inflate
except ImportError:  # a platform without an isal wheel: the standard library's zlib
    _inflate = zlib  # type: ignore[assignment]

from nightjar.ingest.fastpath import LineValidator
from nightjar.ingest.validate import BOM, FUTURE_SKEW, MAX_LINE_BYTES

log = logging.getLogger(__name__)

BATCH_ROWS = 500_000  # lines per validation batch: one INSERT into raw.events and one CHECKPOINT each
READ_CHUNK = 1 << 18
FILE_FAULTS = ("corrupt_gzip", "unreadable_file", "not_a_file", "symlink")
# faults that leave a file unread and not recorded as loaded: retried when the entry changes
RETRIED_FAULTS = ("unreadable_file", "not_a_file", "symlink")
_PARTIAL_LINE = " | partial line: "

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


def stat_fault(path: Path, root: Path | None = None) -> tuple[str | None, str | None]:
    """``symlink`` when the entry is a symbolic link (lstat: links are never followed) or,
    with ``root``, resolves outside ``root``; ``unreadable_file`` when it cannot be
    stat'ed; ``not_a_file`` when it is not a regular file; else ``(None, None)``."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return "unreadable_file", f"{type(exc).__name__}: {exc}"
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(path)
        except OSError as exc:
            target = f"? ({type(exc).__name__})"
        return "symlink", f"{path.name} is a symbolic link to {target}; not read"
    if root is not None and not _inside(path, root):
        return "symlink", f"{path} resolves outside the landing folder {root}; not read"
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        return "not_a_file", f"{path.name} is {kind}"
    return None, None


def _inside(path: Path, root: Path) -> bool:
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))
    except OSError:
        return False


def read_file(path: Path, root: Path | None = None) -> tuple[bytes, str | None, str | None]:
    """Return ``(content, fault, message)``; content is what could be decoded. With
    ``root`` (the landing folder), a path that resolves outside it is not read."""
    fault, message = stat_fault(path, root)
    if fault is not None:
        return b"", fault, message
    try:
        # O_NOFOLLOW: a file swapped for a link since the lstat above is still not followed
        fh = os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return b"", "symlink", f"{path.name} became a symbolic link; not read"
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


def _fault_row(fault: str, message: str, fragment: bytes | None = None) -> str:
    """``raw_line`` of a file-level fault's reject row (:func:`_fault_message` reads it back)."""
    raw = f"[{fault}] {message}"
    if fragment:
        raw += _PARTIAL_LINE + fragment.decode("utf-8", "backslashreplace")[:MAX_LINE_BYTES]
    return raw


def _fault_message(fault: str, raw_line: str) -> str:
    return raw_line.removeprefix(f"[{fault}] ").split(_PARTIAL_LINE, 1)[0]


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
    root = Path(header["root"]) if header.get("root") else None  # absent in older packages
    skew = timedelta(hours=header["future_skew_hours"]) if "future_skew_hours" in header else FUTURE_SKEW
    validator = LineValidator(loaded_at, con, tables["events"], tables["events_rejected"], skew)
    results: list[FileResult] = []
    try:
        for entry in entries:
            rel = entry["file"]
            res = FileResult(rel)
            results.append(res)
            if "fault" in entry:
                data, fault, message = b"", entry["fault"], entry["error"]
            else:
                data, fault, message = read_file(Path(entry["path"]), root)
            res.fault, res.error = fault, message
            if fault in RETRIED_FAULTS:
                if "fault" not in entry:
                    log.error("events file %s: %s after it was listed (%s); recorded as loaded", rel, fault, message)
                validator.add_reject(_fault_row(fault, message), rel, 0, fault)
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
                res.lines_read += 1
                validator.add_reject(_fault_row(fault, message, fragment), rel, res.lines_read, "corrupt_gzip")
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
    return results


def load_results(con, load_id: str, tables: dict[str, str]) -> list[FileResult]:
    """The per-file results :func:`load_manifest` stored for load ``load_id``, whichever
    process ran it: the counts from ``events_load_log``, a file-level fault and its message
    from the file's fault row in ``events_rejected`` (same file and load time)."""
    faults = ", ".join(f"'{f}'" for f in FILE_FAULTS)
    rows = con.execute(
        f"""select l._file, l.lines_read, l.rows_loaded, l.rows_rejected, r.reason, r.raw_line
            from {tables["events_load_log"]} l
            left join {tables["events_rejected"]} r
              on r._file = l._file and r._loaded_at = l._loaded_at and r.reason in ({faults})
            where l.load_id = ?
            order by l._file""",
        [load_id],
    ).fetchall()
    return [
        FileResult(file, lines, loaded, rejected, fault, _fault_message(fault, raw) if fault else None)
        for file, lines, loaded, rejected, fault, raw in rows
    ]


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
