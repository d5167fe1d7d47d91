"""The events load job: read the landing files a manifest names, validate their lines and
insert them into the warehouse.

The manifest is written by the extract step (:mod:`nightjar.ingest.discover`); this job
(:func:`load_manifest`) runs in dlt's load step, started by the warehouse destination
(:mod:`nightjar.ingest.destination`). Each file is read as a stream (:func:`iter_content`:
bounded by the manifest's caps), gunzipped if need be, split into lines and validated in DuckDB inside the ``INSERT`` into ``raw.events``; the other
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

import duckdb
import pyarrow as pa

try:  # ISA-L's inflate: ~3x zlib's speed on the landing files (BENCHMARKS.md), same format
    from isal import isal_zlib as _inflate
except ImportError:  # a platform without an isal wheel: the standard library's zlib
    _inflate = zlib  # type: ignore[assignment]

from nightjar.ingest.fastpath import LineValidator
from nightjar.ingest.validate import BOM, FUTURE_SKEW, MAX_LINE_BYTES, MIN_TIMESTAMP, truncate_raw

log = logging.getLogger(__name__)

BATCH_ROWS = 500_000  # lines per validation batch: one INSERT into raw.events and one CHECKPOINT each
READ_CHUNK = 1 << 18
FILE_FAULTS = ("corrupt_gzip", "unreadable_file", "not_a_file", "symlink", "file_too_large", "load_failed")
# errors of the warehouse or the machine, not of one file: never quarantined, they fail the job
ENVIRONMENT_ERRORS: tuple[type[BaseException], ...] = (
    MemoryError, OSError, duckdb.IOException, duckdb.OutOfMemoryException, duckdb.FatalException,
    duckdb.InterruptException, duckdb.PermissionException, duckdb.TransactionException,
)
# per-file caps (nightjar.settings: NIGHTJAR_MAX_FILE_BYTES / _MAX_FILE_LINES / _MAX_LINE_BYTES)
DEFAULT_MAX_FILE_BYTES = 2 * 1024**3
DEFAULT_MAX_FILE_LINES = 10_000_000
DEFAULT_MAX_LINE_BYTES = 1024**2
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


OUT_CHUNK = 1 << 22  # inflated bytes per step of a streamed read
BLOCK_BYTES = 1 << 26  # complete lines handed on at once (bounds memory per file)


class _StreamFault(Exception):
    def __init__(self, fault: str, message: str):
        super().__init__(message)
        self.fault, self.message = fault, message


def _raw_chunks(fh, gz: bool):
    """The content of an open file, inflated if ``gz``, as chunks of at most ``OUT_CHUNK``
    bytes (a gzip bomb never inflates further than one chunk ahead). Multi-member gzip and
    trailing zero padding as :func:`gunzip_partial`; an error raises :class:`_StreamFault`
    after every byte decodable before it (a broken member is decoded again with zlib)."""
    if not gz:
        while chunk := fh.read(OUT_CHUNK):
            yield chunk
        return
    pos = 0  # file offset of the current member
    while True:
        fh.seek(pos)
        head = fh.read(2)
        if not head:
            return
        if head != b"\x1f\x8b":
            rest = head + fh.read(READ_CHUNK)
            while rest and not rest.strip(b"\x00"):
                rest = fh.read(READ_CHUNK)
            if not rest:
                return  # trailing zero padding
            what = "not a gzip file" if pos == 0 else f"garbage after gzip member at byte {pos}"
            raise _StreamFault("corrupt_gzip", f"BadGzipFile: {what}")
        lib, skip, emitted = _inflate, 0, 0
        while True:
            fh.seek(pos)
            d = lib.decompressobj(wbits=31)
            consumed, error = 0, None
            try:
                while not d.eof:
                    data = d.unconsumed_tail or fh.read(READ_CHUNK)
                    if not data:
                        break
                    if not d.unconsumed_tail:
                        consumed += len(data)
                    out = d.decompress(data, OUT_CHUNK)
                    if skip:
                        cut = min(skip, len(out))
                        out, skip = out[cut:], skip - cut
                    if out:
                        emitted += len(out)
                        yield out
            except (zlib.error, lib.error) as exc:
                error = f"zlib.error: {exc}"
            if error is None and not d.eof:
                if lib is zlib:
                    tail = d.flush()
                    if tail:
                        yield tail
                error = "EOFError: compressed file ended before the end-of-stream marker was reached"
            if error is None:
                pos = pos + consumed - len(d.unused_data)
                break
            if lib is not zlib:  # again with zlib, which emits every byte it can
                lib, skip = zlib, emitted
                continue
            raise _StreamFault("corrupt_gzip", error)


def iter_content(path: Path, root: Path | None, max_file_bytes: int, max_line_bytes: int):
    """Read a landing file as a stream. Yields ``("lines", bytes)`` blocks of complete
    lines (the last one may lack its newline at the end of the file), each line at most
    ``max_line_bytes``; ``("long", prefix, length)`` for a longer line (never held whole:
    only a prefix of ``MAX_LINE_BYTES + 4`` bytes is kept); and at most one final
    ``(fault, message, fragment)`` with fault ``corrupt_gzip`` / ``unreadable_file`` /
    ``not_a_file`` / ``symlink`` / ``file_too_large`` (more than ``max_file_bytes``
    inflated bytes). A leading UTF-8 BOM is dropped."""

    fault, message = stat_fault(path, root)
    if fault is not None:
        yield fault, message, None
        return
    try:
        fh = os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            yield "symlink", f"{path.name} became a symbolic link; not read", None
        else:
            yield "unreadable_file", f"{type(exc).__name__}: {exc}", None
        return
    keep = MAX_LINE_BYTES + 4
    total = 0
    pending: list[bytes] = []
    pending_len = 0
    done: list[bytes] = []  # complete lines not handed on yet
    done_len = 0
    long_prefix: bytes | None = None  # inside a line longer than max_line_bytes
    long_len = 0
    first = True

    window = max(1, max_line_bytes // 2)

    def complete(block: bytes):
        # split out the lines longer than the cap. No array per line: the block is tiled in
        # windows of half the cap; a longer line fully covers a window without a newline,
        # so only such windows are looked at (bytes.find/rfind, C speed, no allocation).
        n, start, i = len(block), 0, 0
        while i < n:
            j = min(i + window, n)
            if j - i == window and block.find(b"\n", i, j) < 0:
                s = block.rfind(b"\n", 0, i) + 1
                e = block.find(b"\n", j)
                e = n if e < 0 else e
                if e - s > max_line_bytes:
                    if s > start:
                        yield "lines", block[start:s]
                    yield "long", block[s : s + keep], e - s
                    start = i = e + 1
                    continue
            i = j
        if start < n:
            yield "lines", block[start:] if start else block

    with fh:
        try:
            for chunk in _raw_chunks(fh, path.name.endswith(".gz")):
                total += len(chunk)
                if total > max_file_bytes:
                    yield "file_too_large", f"more than {max_file_bytes} bytes inflated (NIGHTJAR_MAX_FILE_BYTES)", None
                    return
                if first:
                    if chunk.startswith(BOM):
                        chunk = chunk[len(BOM):]
                    first = False
                if long_prefix is not None:
                    i = chunk.find(b"\n")
                    if i < 0:
                        long_len += len(chunk)
                        continue
                    long_len += i
                    if done:
                        yield from complete(b"".join(done))
                        done, done_len = [], 0
                    yield "long", long_prefix, long_len
                    long_prefix, chunk = None, chunk[i + 1 :]
                cut = chunk.rfind(b"\n")
                if cut < 0:
                    pending.append(chunk)
                    pending_len += len(chunk)
                    if pending_len > max_line_bytes:  # the tail is one unfinished line
                        line = b"".join(pending)
                        long_prefix, long_len, pending, pending_len = line[:keep], len(line), [], 0
                    continue
                done.append(b"".join(pending) + chunk[: cut + 1] if pending else chunk[: cut + 1])
                done_len += len(done[-1])
                rest = chunk[cut + 1 :]
                pending, pending_len = ([rest], len(rest)) if rest else ([], 0)
                if done_len >= BLOCK_BYTES:
                    yield from complete(b"".join(done))
                    done, done_len = [], 0
                if pending_len > max_line_bytes:
                    long_prefix, long_len, pending, pending_len = rest[:keep], len(rest), [], 0
        except _StreamFault as exc:
            if done:
                yield from complete(b"".join(done))
            if long_prefix is not None:
                yield "long", long_prefix, long_len
            yield exc.fault, exc.message, b"".join(pending)
            return
        except OSError as exc:
            yield "unreadable_file", f"{type(exc).__name__}: {exc}", None
            return
    if done:
        yield from complete(b"".join(done))
    if long_prefix is not None:
        yield "long", long_prefix, long_len
    elif pending:
        yield from complete(b"".join(pending))


def _fault_row(fault: str, message: str, fragment: bytes | None = None) -> str:
    """``raw_line`` of a file-level fault's reject row (:func:`_fault_message` reads it back)."""
    raw = f"[{fault}] {message}"
    if fragment:
        raw += _PARTIAL_LINE + fragment.decode("utf-8", "backslashreplace")[:MAX_LINE_BYTES]
    return raw


def _fault_message(fault: str, raw_line: str) -> str:
    return raw_line.removeprefix(f"[{fault}] ").split(_PARTIAL_LINE, 1)[0]


def _load_file(validator: LineValidator, con, entry: dict, res: FileResult, tables: dict[str, str],
               job: dict) -> None:
    """Read, split and hand one manifest entry's lines to ``validator`` (see :func:`load_manifest`)."""
    rel, loaded_at, batch_rows, root = res.file, job["loaded_at"], job["batch_rows"], job["root"]
    max_bytes, max_lines, max_line = job["max_bytes"], job["max_lines"], job["max_line"]
    if "fault" in entry:
        fault, message = entry["fault"], entry["error"]
        validator.add_reject(_fault_row(fault, message), rel, 0, fault)
        res.fault, res.error, res.lines_read = fault, message, 1
        return
    fault = message = fragment = None
    # a Segment export's lines take the strict Python path, mapped onto native events
    segment = entry.get("format") == "segment"
    if entry.get("root"):  # the layout's own folder (segment-logs), for the symlink rule
        root = Path(entry["root"])
    for item in iter_content(Path(entry["path"]), root, max_bytes, max_line):
        kind = item[0]
        if kind == "long":
            if res.lines_read + 1 > max_lines:
                fault, message = "file_too_large", f"more than {max_lines} lines (NIGHTJAR_MAX_FILE_LINES)"
                break
            res.lines_read += 1
            # the same code as any line over 32 KiB: the cap only bounds memory
            validator.add_reject(truncate_raw(item[1].decode("utf-8", "backslashreplace"), item[2]),
                                 rel, res.lines_read, "line_too_large")
            continue
        if kind != "lines":
            fault, message, fragment = item
            break
        data = item[1]
        if res.lines_read + data.count(b"\n") + (not data.endswith(b"\n")) > max_lines:
            fault = "file_too_large"  # checked before the block is split: no line past the cap is read
            message = f"more than {max_lines} lines (NIGHTJAR_MAX_FILE_LINES)"
            break
        if segment:
            _add_segment_lines(validator, rel, data, batch_rows, res)
            del data
            continue
        for ckind, first_no, chunk in _line_chunks(data, batch_rows, res.lines_read):
            if ckind == "arrow":
                validator.add_arrow_lines(rel, chunk, first_no)
            elif ckind == "text":
                validator.add_text_lines(rel, chunk, first_no)
            elif ckind == "numbered_text":
                validator.add_text_lines(rel, [t for _, t in chunk], line_numbers=[n for n, _ in chunk])
            else:
                validator.add_byte_lines(rel, chunk)
            res.lines_read += len(chunk)
            if len(validator) >= batch_rows:
                validator.flush()
        del data
    res.fault, res.error = fault, message
    if fault == "file_too_large":  # the whole file becomes one reject row
        log.error("events file %s: %s; not loaded", rel, message)
        validator.flush(wait=True)
        con.execute(f"delete from {tables['events']} where _file = ? and _loaded_at = ?", [rel, loaded_at])
        con.execute(f"delete from {tables['events_rejected']} where _file = ? and _loaded_at = ?",
                    [rel, loaded_at])
        validator.counts.pop(rel, None)
        res.error = message = f"{message}; {res.lines_read} lines read before the cap"
        validator.add_reject(_fault_row(fault, message), rel, 0, fault)
        res.lines_read = 1
    elif fault in RETRIED_FAULTS:
        log.error("events file %s: %s after it was listed (%s); recorded as loaded", rel, fault, message)
        validator.add_reject(_fault_row(fault, message), rel, 0, fault)
        res.lines_read = 1
    elif fault == "corrupt_gzip":
        log.error("events file %s: corrupt gzip after line %d (%s); earlier lines kept",
                  rel, res.lines_read, message)
        res.lines_read += 1
        validator.add_reject(_fault_row(fault, message, fragment), rel, res.lines_read, "corrupt_gzip")


def _add_segment_lines(validator: LineValidator, rel: str, data: bytes, batch_rows: int, res: FileResult) -> None:
    """Hand a block of a Segment export's lines to the strict Python validator, each message
    mapped onto the native event (:func:`nightjar.ingest.segment.to_native`)."""
    from nightjar.ingest.segment import to_native

    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    for start in range(0, len(lines), batch_rows):
        chunk = lines[start : start + batch_rows]
        validator.add_byte_lines(rel, enumerate(chunk, res.lines_read + 1), to_native)
        res.lines_read += len(chunk)
        if len(validator) >= batch_rows:
            validator.flush()


def _delete_file_rows(con, tables: dict[str, str], rel: str, loaded_at) -> None:
    for t in ("events", "events_rejected"):
        con.execute(f"delete from {tables[t]} where _file = ? and _loaded_at = ?", [rel, loaded_at])


def load_manifest(con, manifest: Path, tables: dict[str, str], isolate: bool = False) -> list[FileResult]:
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
    by then, so it is not retried: a rare race, logged as an error); a file past a cap
    (``max_file_bytes`` / ``max_file_lines`` in the manifest) is one ``file_too_large`` row.

    ``isolate``: load file by file, each with its own validator and waiting for its
    inserts; a file whose load raises has its rows of this load deleted and becomes one
    ``load_failed`` reject row (the error), and the other files load. The destination job
    uses it to redo a manifest whose normal (overlapped) load failed."""
    header, *entries = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    loaded_at = datetime.fromisoformat(header["loaded_at"])
    batch_rows = int(header["batch_rows"])
    root = Path(header["root"]) if header.get("root") else None  # absent in older packages
    skew = timedelta(hours=header["future_skew_hours"]) if "future_skew_hours" in header else FUTURE_SKEW
    max_bytes = int(header.get("max_file_bytes") or DEFAULT_MAX_FILE_BYTES)
    max_lines = int(header.get("max_file_lines") or DEFAULT_MAX_FILE_LINES)
    max_line = int(header.get("max_line_bytes") or DEFAULT_MAX_LINE_BYTES)
    earliest = datetime.fromisoformat(header["earliest_event_date"]) if header.get("earliest_event_date") \
        else MIN_TIMESTAMP
    job = {"loaded_at": loaded_at, "batch_rows": batch_rows, "root": root,
           "max_bytes": max_bytes, "max_lines": max_lines, "max_line": max_line}

    def new_validator() -> LineValidator:
        return LineValidator(loaded_at, con, tables["events"], tables["events_rejected"], skew, earliest)

    validator = new_validator()
    results: list[FileResult] = []
    counts: dict[str, tuple[int, int]] = {}
    try:
        for entry in entries:
            res = FileResult(str(entry.get("file")))
            results.append(res)
            if not isolate:
                _load_file(validator, con, entry, res, tables, job)
                if len(validator) >= batch_rows:
                    validator.flush()
                continue
            one = new_validator()
            try:
                _load_file(one, con, entry, res, tables, job)
                one.flush(wait=True)
                counts[res.file] = tuple(one.counts.get(res.file, (0, 0)))
            except ENVIRONMENT_ERRORS:
                raise
            except Exception as exc:  # noqa: BLE001 - quarantined, the other files go on
                message = f"{type(exc).__name__}: {exc}"[:MAX_LINE_BYTES]
                log.error("events file %s: load failed (%s); quarantined as load_failed", res.file, message)
                try:
                    one.close()
                finally:
                    one = None
                _delete_file_rows(con, tables, res.file, loaded_at)
                validator.add_reject(_fault_row("load_failed", message), res.file, 0, "load_failed")
                res.fault, res.error, res.lines_read = "load_failed", message, 1
            finally:
                if one is not None:
                    one.close()
        validator.flush(wait=True)
        for r, c in counts.items():
            validator.counts.setdefault(r, [0, 0])
            validator.counts[r][0] += c[0]
            validator.counts[r][1] += c[1]
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


def run_events_job(con, manifest: Path, tables: dict[str, str]) -> None:
    """The whole ``events`` job of a package, on either engine: :func:`load_manifest`; if it
    raises for a reason other than the database or the machine, its rows are undone and the
    manifest loads again file by file, quarantining the file(s) that fail (``load_failed``)."""
    try:
        load_manifest(con, manifest, tables)
    except ENVIRONMENT_ERRORS:
        raise  # the warehouse or the machine, not a file: the package is retried as a whole
    except Exception as exc:  # noqa: BLE001
        # one file must not fail the package
        log.error("events load job failed (%s: %s); loading file by file", type(exc).__name__, exc)
        undo_manifest(con, manifest, tables)
        load_manifest(con, manifest, tables, isolate=True)


def undo_manifest(con, manifest: Path, tables: dict[str, str]) -> None:
    """Delete every row the load of ``manifest`` wrote (its load time / load id)."""
    header = json.loads(manifest.read_text().split("\n", 1)[0])
    loaded_at = datetime.fromisoformat(header["loaded_at"])
    con.execute(f"delete from {tables['events']} where _loaded_at = ?", [loaded_at])
    con.execute(f"delete from {tables['events_rejected']} where _loaded_at = ?", [loaded_at])
    con.execute(f"delete from {tables['events_load_log']} where load_id = ?", [header["load_id"]])


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


def _line_chunks(data: bytes, batch_rows: int, base: int = 0):
    """Split a file's content into lines (``\\n``; a final newline ends the last line)
    and yield ``(kind, first line number, lines)`` chunks of at most ``batch_rows``.

    kind ``arrow``: consecutive lines as a slice of an Arrow string array (the fast path
    for valid UTF-8); ``text``: consecutive lines as str; ``numbered_text``: (line number,
    str) pairs; ``bytes``: (line number, bytes) pairs of lines that are not valid UTF-8.
    """
    arr = arrow_lines(data)
    if arr is not None:
        for start in range(0, len(arr), batch_rows):
            yield "arrow", base + start + 1, arr.slice(start, batch_rows)
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        lines_b = data.split(b"\n")
        if lines_b and lines_b[-1] == b"":
            lines_b.pop()
        good, bad = [], []
        for no, line in enumerate(lines_b, base + 1):
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
        yield "text", base + start + 1, lines[start : start + batch_rows]
