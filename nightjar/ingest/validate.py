"""Validation of raw event lines (DESIGN.md §1.1) into Arrow batches.

One landing-file line becomes exactly one row: either a valid event for ``raw.events``
or a quarantined row for ``raw.events_rejected`` with a single ``reason`` code. When a
line breaks several rules, the first rule in the order below wins:

====================================  =====================================================
reason                                rule
====================================  =====================================================
``line_too_large``                    line longer than 32 KiB (bytes, without the newline)
``empty_line``                        empty or whitespace-only line (kept so counts reconcile)
``invalid_utf8``                      the line's bytes are not valid UTF-8 (checked when the
                                      line does not parse)
``invalid_json``                      not parsable as strict RFC 8259 JSON (no NaN, no
                                      trailing commas, no trailing garbage, no lone
                                      surrogate escapes)
``not_an_object``                     valid JSON but not an object (array, string, number...)
``missing_event_id``                  absent, null, or empty/whitespace-only string
``event_id_not_string``               present but not a string (e.g. a number)
``missing_event_name`` / ``event_name_not_string``
``missing_anonymous_id`` / ``anonymous_id_not_string``
``missing_timestamp``                 absent, null or empty string
``unparsable_timestamp``              not a string, not ``ISO_WITH_OFFSET_RE``, or not a real
                                      date-time (e.g. Feb 30)
``timestamp_without_offset``          matches ``ISO_NO_OFFSET_RE`` (no ``Z``/``±hh[:mm]``)
``unparsable_received_at``            present (non-null, non-empty) but not an ISO-8601 string
``received_at_without_offset``        ISO-8601 but without an offset
``timestamp_too_early``               timestamp before the earliest accepted event date
                                      (``NIGHTJAR_EARLIEST_EVENT_DATE``, 2000-01-01 UTC)
``timestamp_after_received_at``       timestamp > received_at + 1 day
``future_timestamp``                  timestamp or received_at later than the load time +
                                      the skew setting (``NIGHTJAR_FUTURE_SKEW_HOURS``, 24)
``properties_not_object``             present, not null and not an object
``context_not_object``                present, not null and not an object
``user_id_not_string``                present, not null and not a string
``nul_character``                     a NUL (U+0000) in event_id, event_name, anonymous_id,
                                      or a string user_id / session_id
``id_too_long``                       event_id, anonymous_id, or a string user_id /
                                      session_id longer than ``MAX_ID_CHARS`` (256) characters
``name_too_long``                     event_name longer than ``MAX_NAME_CHARS`` (128) characters
====================================  =====================================================

File-level faults (``corrupt_gzip``, ``unreadable_file``, ``not_a_file``, ``symlink``,
``file_too_large``, ``load_failed``) are produced by :mod:`nightjar.ingest.load_job` and
:mod:`nightjar.ingest.discover`, not here:

====================================  =====================================================
``file_too_large``                    the file inflates to more than ``NIGHTJAR_MAX_FILE_BYTES``
                                      (2 GiB) or has more than ``NIGHTJAR_MAX_FILE_LINES``
                                      (10 M) lines: one row for the whole file, nothing loaded
``load_failed``                       loading the file raised an error: one row with the error,
                                      the file's other rows of that load are removed
====================================  =====================================================

A line longer than ``NIGHTJAR_MAX_LINE_BYTES`` (1 MiB) is read as a stream and never held
whole; it is ``line_too_large`` like any line over 32 KiB (``raw_line`` keeps 32 KiB).

The same rules are implemented as a DuckDB query in :mod:`nightjar.ingest.fastpath` (used
for the bulk of the lines); this module is the strict reference and handles the lines the
fast path routes here.

Normalisation of accepted rows: a UTF-8 BOM at the start of a file and trailing ``\\r``
(CRLF files) are stripped before validation; timestamps are converted to UTC;
``received_at`` defaults to ``timestamp``; ``properties``/``context`` are re-serialised
as compact JSON object text (``null`` → SQL NULL); a non-string ``session_id`` (it is
informational only and not a rejection rule) is kept as its JSON text; ``event_name``,
ids and ``user_id`` are kept exactly as sent (staging normalises).
"""
from __future__ import annotations

import gc
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

import orjson
import pyarrow as pa

MAX_LINE_BYTES = 32 * 1024
UTC = timezone.utc
# default of NIGHTJAR_EARLIEST_EVENT_DATE: events before it are rejected (timestamp_too_early)
MIN_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_SKEW = timedelta(days=1)
# default of NIGHTJAR_FUTURE_SKEW_HOURS: how far past the load time an event time may lie
FUTURE_SKEW = timedelta(days=1)
# Identifier / name limits (characters): far above real ids (UUIDs, customer ids) and event
# names, low enough that a client cannot blow up join keys and dimension columns.
MAX_ID_CHARS = 256
MAX_NAME_CHARS = 128
NUL = "\x00"
BOM = b"\xef\xbb\xbf"
WHITESPACE = " \t\n\r\f\v"
# ISO-8601 date-times accepted for `timestamp` / `received_at` (shared with the DuckDB
# fast path, so both paths accept exactly the same strings). Hours 00-23, no leap second.
_ISO_DT = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]+)?)?"
ISO_WITH_OFFSET_RE = _ISO_DT + r"(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)"
ISO_NO_OFFSET_RE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]+)?)?)?"
_with_offset = re.compile(ISO_WITH_OFFSET_RE).fullmatch
_no_offset = re.compile(ISO_NO_OFFSET_RE).fullmatch

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_name", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("received_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("anonymous_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string()),
        pa.field("session_id", pa.string()),
        pa.field("properties", pa.string()),
        pa.field("context", pa.string()),
        pa.field("_file", pa.string(), nullable=False),
        pa.field("_line", pa.int64(), nullable=False),
        pa.field("_loaded_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)

REJECTED_SCHEMA = pa.schema(
    [
        pa.field("raw_line", pa.string()),
        pa.field("_file", pa.string(), nullable=False),
        pa.field("_line", pa.int64()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("_loaded_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


class Reject(Exception):
    """Raised inside :func:`validate_event` with the reason code."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def truncate_raw(text: str, raw_len: int | None = None) -> str:
    """Keep at most 32 KiB (UTF-8 bytes) of a raw line, with a marker when cut."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= MAX_LINE_BYTES:
        return text
    kept = data[:MAX_LINE_BYTES].decode("utf-8", "ignore")
    return f"{kept}...[truncated, {raw_len or len(data)} bytes]"


def raw_text(line: bytes) -> str:
    """Readable text of a raw line for the quarantine (invalid bytes shown as ``\\xNN``)."""
    if len(line) > MAX_LINE_BYTES:
        return truncate_raw(line[: MAX_LINE_BYTES + 4].decode("utf-8", "backslashreplace"), len(line))
    return line.decode("utf-8", "backslashreplace")


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # e.g. integers beyond 64 bits, which orjson cannot write
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        pass
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise Reject("invalid_utf8") from None
    # orjson refuses a few valid documents (e.g. integers beyond 64 bits); retry strictly.
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
        # lone surrogate escapes ("\\ud800") parse but cannot be stored as text
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        raise Reject("invalid_json") from None
    return obj


def _required_str(obj: dict, name: str) -> str:
    value = obj.get(name)
    if value is None or (type(value) is str and not value.strip(WHITESPACE)):
        raise Reject(f"missing_{name}")
    if type(value) is not str:
        raise Reject(f"{name}_not_string")
    return value


def _optional(obj: dict, name: str, kind: type, reason: str) -> Any:
    """`obj[name]`, None when absent or null; rejected with `reason` when of another type."""
    value = obj.get(name)
    if value is not None and type(value) is not kind:
        raise Reject(reason)
    return value


_fromiso = datetime.fromisoformat


def _parse_ts(value: Any, name: str) -> datetime:
    if type(value) is not str:
        raise Reject(f"unparsable_{name}")
    if _with_offset(value):
        try:
            return _fromiso(value.upper())
        except ValueError:  # e.g. 2025-02-30
            raise Reject(f"unparsable_{name}") from None
    if _no_offset(value):
        raise Reject(f"{name}_without_offset")
    raise Reject(f"unparsable_{name}")


def validate_event(obj: Any, latest: datetime | None = None, earliest: datetime = MIN_TIMESTAMP) -> tuple:
    """Validate one decoded JSON value; return the output columns or raise :class:`Reject`.

    ``latest``: the latest accepted ``timestamp``/``received_at`` (load time + skew);
    None skips the ``future_timestamp`` rule. ``earliest``: the earliest accepted
    ``timestamp``."""
    if type(obj) is not dict:
        raise Reject("not_an_object")
    event_id = _required_str(obj, "event_id")
    event_name = _required_str(obj, "event_name")
    anonymous_id = _required_str(obj, "anonymous_id")
    ts_raw = obj.get("timestamp")
    if ts_raw is None or ts_raw == "":
        raise Reject("missing_timestamp")
    ts = _parse_ts(ts_raw, "timestamp")
    ra_raw = obj.get("received_at")
    received_at = ts if ra_raw is None or ra_raw == "" else _parse_ts(ra_raw, "received_at")
    if ts < earliest:
        raise Reject("timestamp_too_early")
    if ts > received_at + MAX_CLOCK_SKEW:
        raise Reject("timestamp_after_received_at")
    if latest is not None and (ts > latest or received_at > latest):
        raise Reject("future_timestamp")
    props = _optional(obj, "properties", dict, "properties_not_object")
    ctx = _optional(obj, "context", dict, "context_not_object")
    user_id = _optional(obj, "user_id", str, "user_id_not_string")
    session_id = obj.get("session_id")
    ids = [event_id, anonymous_id]
    if user_id is not None:
        ids.append(user_id)
    if type(session_id) is str:
        ids.append(session_id)
    if NUL in event_name or any(NUL in v for v in ids):
        raise Reject("nul_character")
    if any(len(v) > MAX_ID_CHARS for v in ids):
        raise Reject("id_too_long")
    if len(event_name) > MAX_NAME_CHARS:
        raise Reject("name_too_long")
    if session_id is not None and type(session_id) is not str:
        session_id = _dumps(session_id)
    return (
        event_id,
        event_name,
        ts,
        received_at,
        anonymous_id,
        user_id,
        session_id,
        None if props is None else _dumps(props),
        None if ctx is None else _dumps(ctx),
    )


@dataclass
class BatchBuilder:
    """Accumulates validated rows column-wise and turns them into Arrow tables."""

    loaded_at: datetime
    future_skew: timedelta = FUTURE_SKEW
    earliest: datetime = MIN_TIMESTAMP
    ev: list[list] = field(default_factory=lambda: [[] for _ in range(11)])
    rej: list[list] = field(default_factory=lambda: [[] for _ in range(4)])

    @property
    def n_events(self) -> int:
        return len(self.ev[0])

    @property
    def n_rejected(self) -> int:
        return len(self.rej[0])

    def __len__(self) -> int:
        return self.n_events + self.n_rejected

    def add_reject(self, raw_line: str | None, file: str, line_no: int | None, reason: str) -> None:
        for col, value in zip(self.rej, (raw_line, file, line_no, reason)):
            col.append(value)

    def add_lines(self, lines: Iterable[bytes], file: str, first_line_no: int = 1) -> tuple[int, int]:
        """Validate ``lines`` (without their ``\\n``); return (loaded, rejected) counts."""
        return self.add_numbered(enumerate(lines, first_line_no), file)

    def add_numbered(self, numbered: Iterable[tuple[int, bytes]], file: str,
                     mapper: Callable[[Any], Any] | None = None) -> tuple[int, int]:
        """Validate ``(line number, line)`` pairs of one file; return (loaded, rejected).

        ``mapper``: turns each decoded line into the native event object before the rules
        run (a Segment message, :func:`nightjar.ingest.segment.to_native`); the quarantine
        keeps the line as read."""
        ev, rej = self.ev, self.rej
        ev_app = [c.append for c in ev]
        rej_raw, rej_file, rej_line, rej_reason = (c.append for c in rej)
        loaded = rejected = 0
        latest = self.loaded_at + self.future_skew
        loads = orjson.loads
        gc_was_enabled = gc.isenabled()
        gc.disable()  # millions of short-lived dicts: generational GC would dominate
        try:
            for line_no, line in numbered:
                line = line.rstrip(b"\r")
                try:
                    if len(line) > MAX_LINE_BYTES:
                        raise Reject("line_too_large")
                    try:
                        obj = loads(line)
                    except orjson.JSONDecodeError:
                        if not line.strip(WHITESPACE.encode()):
                            raise Reject("empty_line") from None
                        obj = _loads(line)
                    if mapper is not None:
                        obj = mapper(obj)
                    row = validate_event(obj, latest, self.earliest)
                except Reject as r:
                    rej_raw(raw_text(line))
                    rej_file(file)
                    rej_line(line_no)
                    rej_reason(r.reason)
                    rejected += 1
                    continue
                for app, value in zip(ev_app, row):
                    app(value)
                ev_app[9](file)
                ev_app[10](line_no)
                loaded += 1
        finally:
            if gc_was_enabled:
                gc.enable()
        return loaded, rejected

    def take_events(self) -> pa.Table | None:
        if not self.n_events:
            return None
        n = self.n_events
        cols = self.ev
        arrays = [pa.array(c, type=f.type) for c, f in zip(cols, EVENTS_SCHEMA)]
        arrays.append(pa.array([self.loaded_at] * n, type=EVENTS_SCHEMA.field("_loaded_at").type))
        self.ev = [[] for _ in range(11)]
        return pa.Table.from_arrays(arrays, schema=EVENTS_SCHEMA)

    def take_rejected(self) -> pa.Table | None:
        if not self.n_rejected:
            return None
        n = self.n_rejected
        arrays = [pa.array(c, type=f.type) for c, f in zip(self.rej, REJECTED_SCHEMA)]
        arrays.append(pa.array([self.loaded_at] * n, type=REJECTED_SCHEMA.field("_loaded_at").type))
        self.rej = [[] for _ in range(4)]
        return pa.Table.from_arrays(arrays, schema=REJECTED_SCHEMA)


def split_lines(data: bytes) -> list[bytes]:
    """Split decoded file content into lines (``\\n`` only; a final newline ends the last
    line rather than starting an empty one; a leading UTF-8 BOM is dropped)."""
    if data.startswith(BOM):
        data = data[len(BOM):]
    if not data:
        return []
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines
