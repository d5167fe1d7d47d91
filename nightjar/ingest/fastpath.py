"""Vectorised line validation in DuckDB (the fast path of :mod:`nightjar.ingest.validate`).

A batch of lines (Arrow: ``_file``, ``_line``, ``line``) is validated in one DuckDB query
that implements exactly the rules of :func:`validate.validate_event`; in a load it runs on
the warehouse itself, inside the ``INSERT`` into ``raw.events``. DuckDB's
JSON reader is more lenient than RFC 8259 (it accepts ``NaN``/``Infinity`` and trailing
commas), so lines that *might* use those extensions (a cheap regex; false positives are
fine) are handed to the strict Python validator instead; so are lines that are not valid
UTF-8 (they never reach DuckDB). ``tests/test_ingest_events.py`` checks that both paths
agree on the whole malformed-line corpus.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import duckdb
import pyarrow as pa

from nightjar.ingest.validate import (
    EVENTS_SCHEMA,
    FUTURE_SKEW,
    ISO_NO_OFFSET_RE,
    ISO_WITH_OFFSET_RE,
    MAX_ID_CHARS,
    MAX_LINE_BYTES,
    MAX_NAME_CHARS,
    MIN_TIMESTAMP,
    REJECTED_SCHEMA,
)

NEEDS_PYTHON = "__python__"
# Lines DuckDB would accept but strict JSON does not: trailing commas, and NaN/Infinity in
# any letter case (DuckDB's parser reads nan/inf/infinity case-insensitively). Such a value
# can only follow ':', '[' or ',', so three regexes that each start with one literal
# character find them: RE2 then skips from one ':' (or '[' or ',') to the next instead of
# stepping through every byte (a pattern starting with a character class cost ~2 us per
# line). null does not match. False positives (e.g. ", info" inside a string) are fine:
# those lines go to the strict Python validator.
_WS = "[ \\t\\n\\r]*"
_NAN_INF = "[-+]?(?:[nN][aA][nN]|[iI][nN][fF])"
LENIENT_JSON_RES = (
    f",{_WS}(?:[\\]}}]|{_NAN_INF})",  # trailing comma, or NaN/Infinity as an array element
    f":{_WS}{_NAN_INF}",  # ... as an object value
    f"\\[{_WS}{_NAN_INF}",  # ... as the first array element
)
_LENIENT_JSON = " OR ".join(f"regexp_matches(line, '{r}')" for r in LENIENT_JSON_RES)
_FIELDS = ["event_id", "event_name", "anonymous_id", "timestamp", "received_at", "user_id",
           "session_id", "properties", "context"]
_STRUCT = "{" + ",".join(f'"{f}":"JSON"' for f in _FIELDS) + "}"


def _jtype(expr: str) -> str:
    """JSON type of a value extracted by from_json(..., 'JSON'), from its first character:
    the fragment is re-serialised compactly, so this is exact and avoids a parse."""
    return (
        f"CASE WHEN {expr} IS NULL THEN NULL WHEN {expr} = 'null' THEN 'NULL' "
        f"WHEN starts_with({expr}, '\"') THEN 'VARCHAR' WHEN starts_with({expr}, '{{') THEN 'OBJECT' "
        f"WHEN starts_with({expr}, '[') THEN 'ARRAY' ELSE 'SCALAR' END"
    )


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _required(name: str, col: str) -> str:
    return (
        f"WHEN t_{col} IS NULL OR t_{col} = 'NULL' OR (t_{col} = 'VARCHAR' AND "
        f"regexp_full_match(v_{col}, '[ \\t\\n\\r\\f\\v]*')) THEN 'missing_{name}' "
        f"WHEN t_{col} <> 'VARCHAR' THEN '{name}_not_string' "
    )


def _ts_parse(col: str) -> str:
    return (
        f"CASE WHEN t_{col} = 'VARCHAR' AND regexp_full_match(v_{col}, {_q(ISO_WITH_OFFSET_RE)}) "
        f"THEN TRY_CAST(upper(v_{col}) AS TIMESTAMPTZ) END"
    )


def _ts_reason(name: str, col: str) -> str:
    return (
        f"WHEN t_{col} <> 'VARCHAR' THEN 'unparsable_{name}' "
        f"WHEN regexp_full_match(v_{col}, {_q(ISO_NO_OFFSET_RE)}) THEN '{name}_without_offset' "
        f"WHEN p_{col} IS NULL THEN 'unparsable_{name}' "
    )


_IDS = ["v_event_id", "v_anonymous_id", "v_user_id", "v_session_id"]  # v_* is NULL unless a string
_LATEST = "__LATEST__"  # replaced by the latest accepted event time (load time + skew)
_EARLIEST = "__EARLIEST__"  # replaced by the earliest accepted event time (NIGHTJAR_EARLIEST_EVENT_DATE)

SQL_TEMPLATE = f"""
WITH b AS (
  SELECT _file, _line, CASE WHEN ends_with(line, chr(13)) THEN rtrim(line, chr(13)) ELSE line END AS line FROM batch
), c AS (
  SELECT *, CASE
      WHEN strlen(line) > {MAX_LINE_BYTES} THEN 'line_too_large'
      WHEN regexp_full_match(line, '[ \\t\\n\\r\\f\\v]*') THEN 'empty_line'
      WHEN NOT json_valid(line) THEN 'invalid_json'
      WHEN {_LENIENT_JSON} THEN '{NEEDS_PYTHON}'
      WHEN NOT starts_with(ltrim(line, ' ' || chr(9) || chr(10) || chr(13)), '{{') THEN 'not_an_object'
    END AS pre
  FROM b
), p AS (
  SELECT *, CASE WHEN pre IS NULL THEN from_json(line, {_q(_STRUCT)}) END AS s FROM c
), f0 AS (
  SELECT _file, _line, line, pre, s,
    {", ".join(f"{_jtype('s.' + x)} AS t_{x}" for x in _FIELDS)}
  FROM p
), f AS (
  SELECT *, {", ".join(f"CASE WHEN t_{x} = 'VARCHAR' THEN s.{x} ->> '$' END AS v_{x}" for x in _FIELDS)}
  FROM f0
), g AS (
  SELECT *,
    {_ts_parse("timestamp")} AS p_timestamp,
    CASE WHEN t_received_at IS NULL OR t_received_at = 'NULL' OR (t_received_at = 'VARCHAR' AND v_received_at = '')
         THEN NULL ELSE {_ts_parse("received_at")} END AS p_received_at
  FROM f
), h AS (
  SELECT *, coalesce(p_received_at, p_timestamp) AS received, CASE
      WHEN pre IS NOT NULL THEN pre
      {_required("event_id", "event_id")}
      {_required("event_name", "event_name")}
      {_required("anonymous_id", "anonymous_id")}
      WHEN t_timestamp IS NULL OR t_timestamp = 'NULL' OR (t_timestamp = 'VARCHAR' AND v_timestamp = '')
        THEN 'missing_timestamp'
      {_ts_reason("timestamp", "timestamp")}
      WHEN t_received_at IS NULL OR t_received_at = 'NULL' OR (t_received_at = 'VARCHAR' AND v_received_at = '')
        THEN NULL
      {_ts_reason("received_at", "received_at")}
    END AS r1
  FROM g
)
SELECT *, CASE WHEN reason IS NOT NULL THEN line END AS raw_line FROM (
SELECT _file, _line, line,
  CASE
    WHEN r1 IS NOT NULL THEN r1
    WHEN p_timestamp < {_EARLIEST} THEN 'timestamp_too_early'
    WHEN p_timestamp > received + INTERVAL 1 DAY THEN 'timestamp_after_received_at'
    WHEN p_timestamp > {_LATEST} OR received > {_LATEST} THEN 'future_timestamp'
    WHEN t_properties IS NOT NULL AND t_properties NOT IN ('OBJECT', 'NULL') THEN 'properties_not_object'
    WHEN t_context IS NOT NULL AND t_context NOT IN ('OBJECT', 'NULL') THEN 'context_not_object'
    WHEN t_user_id IS NOT NULL AND t_user_id NOT IN ('VARCHAR', 'NULL') THEN 'user_id_not_string'
    WHEN {" OR ".join(f"contains({v}, chr(0))" for v in ["v_event_name", *_IDS])} THEN 'nul_character'
    WHEN {" OR ".join(f"length({v}) > {MAX_ID_CHARS}" for v in _IDS)} THEN 'id_too_long'
    WHEN length(v_event_name) > {MAX_NAME_CHARS} THEN 'name_too_long'
  END AS reason,
  v_event_id AS event_id, v_event_name AS event_name, p_timestamp AS "timestamp",
  received AS received_at, v_anonymous_id AS anonymous_id,
  CASE WHEN t_user_id = 'VARCHAR' THEN v_user_id END AS user_id,
  CASE WHEN t_session_id = 'VARCHAR' THEN v_session_id
       WHEN t_session_id <> 'NULL' THEN s.session_id::VARCHAR END AS session_id,
  CASE WHEN t_properties = 'OBJECT' THEN s.properties::VARCHAR END AS properties,
  CASE WHEN t_context = 'OBJECT' THEN s.context::VARCHAR END AS context
FROM h)
"""


def validation_sql(latest: datetime, earliest: datetime = MIN_TIMESTAMP) -> str:
    """The validation query, with ``latest`` and ``earliest`` (the latest and earliest
    accepted event times) as literals."""
    return SQL_TEMPLATE.replace(_LATEST, f"TIMESTAMPTZ '{latest.astimezone(timezone.utc).isoformat()}'").replace(
        _EARLIEST, f"TIMESTAMPTZ '{earliest.astimezone(timezone.utc).isoformat()}'")


class DuckDBValidator:
    """Runs the validation query on one DuckDB connection: an in-memory database of its own
    (``run``, the tests' reference), or a cursor of the warehouse (``insert_valid``).
    ``latest``: the latest accepted ``timestamp``/``received_at`` (default: now + 1 day);
    ``earliest``: the earliest accepted ``timestamp`` (default 2000-01-01 UTC)."""

    def __init__(self, threads: int = 2, con: duckdb.DuckDBPyConnection | None = None,
                 latest: datetime | None = None, earliest: datetime = MIN_TIMESTAMP):
        self.con = con if con is not None else duckdb.connect(config={"threads": threads})
        self.con.execute("SET TimeZone = 'UTC'")
        self.sql = validation_sql(latest or datetime.now(timezone.utc) + FUTURE_SKEW, earliest)

    def close(self) -> None:
        self.con.close()

    def run(self, batch: pa.Table) -> pa.Table:
        """Return ``batch`` rows with ``reason`` (NULL = valid) and the parsed columns."""
        self.con.register("batch", batch)
        try:
            return self.con.sql(self.sql).select(*OUT_COLS).to_arrow_table()
        finally:
            self.con.unregister("batch")

    def insert_valid(self, batch: pa.Table, table: str, loaded_at) -> pa.Table | None:
        """Validate ``batch`` and insert its valid rows into ``table`` (the warehouse's
        ``raw.events``) in one statement: the rows go from the Arrow lines straight into the
        table, on all threads, without being written anywhere in between (a parquet spool
        file in between costs ~25 % of the whole load, BENCHMARKS.md).

        Returns the rows that were not inserted (``_file``, ``_line``, ``raw_line``,
        ``reason``), or None. An INSERT cannot also hand back the rejected rows, so they are
        found afterwards: the batch's (``_file``, ``_line``) keys minus those of the rows
        just appended (row ids above the table's largest before the insert: DuckDB appends
        at the end, and one writer at a time holds the warehouse), then validated again
        alone (a few hundred lines per 500k).
        """
        cols = ", ".join(f'"{c}"' for c in EVENT_COLS)
        self.con.register("batch", batch)
        try:
            (before,) = self.con.execute(f"SELECT coalesce(max(rowid), -1) FROM {table}").fetchone()
            (inserted,) = self.con.execute(
                f"INSERT INTO {table} ({cols}, _loaded_at) "
                f"SELECT {cols}, ?::TIMESTAMPTZ FROM ({self.sql}) WHERE reason IS NULL",
                [loaded_at],
            ).fetchone()
            if inserted == batch.num_rows:
                return None
            suspects = self.con.sql(
                f"SELECT _file, _line, line FROM batch ANTI JOIN "
                f"(SELECT _file, _line FROM {table} WHERE rowid > {int(before)}) USING (_file, _line)"
            ).to_arrow_table()
        finally:
            self.con.unregister("batch")
        bad = self.run(suspects).select(["_file", "_line", "raw_line", "reason"])
        if bad.num_rows + inserted != batch.num_rows or bad.column("reason").null_count:
            # cannot happen unless the row-id assumption breaks: fail loudly, never guess
            raise RuntimeError(
                f"events batch of {batch.num_rows} lines: {inserted} inserted, {bad.num_rows} "
                f"not found in {table} ({bad.column('reason').null_count} of them valid)"
            )
        return bad

    def checkpoint(self) -> None:
        """Fold the inserted row groups into the database file now: after each 500k-row
        insert this is cheaper than one checkpoint of the whole load at the end
        (BENCHMARKS.md)."""
        self.con.execute("CHECKPOINT")


EVENT_COLS = [f.name for f in EVENTS_SCHEMA if f.name != "_loaded_at"]
OUT_COLS = ["_file", "_line", "raw_line", "reason", *[c for c in EVENT_COLS if c not in ("_file", "_line")]]


class LineValidator:
    """Collects lines of one or more files, validates them in batches and appends the
    results to the warehouse tables ``events_table`` / ``rejected_table`` through
    ``con`` (a connection to the warehouse).

    ``add_text_lines`` / ``add_arrow_lines`` take lines that are valid UTF-8 (the DuckDB
    fast path); ``add_byte_lines`` takes raw lines of a file that is not (strict Python
    path, which quarantines the invalid ones as ``invalid_utf8``); ``add_reject`` adds a
    file-level quarantine row. ``flush`` hands the pending lines to DuckDB; per-file
    (loaded, rejected) counts are complete after ``flush(wait=True)``.

    Every write to the warehouse runs on one worker thread, in order: DuckDB validates and
    inserts a batch there (releasing the GIL) while the caller reads and splits the next
    files, and a CHECKPOINT never meets another of our write transactions.
    """

    def __init__(self, loaded_at, con: duckdb.DuckDBPyConnection, events_table: str, rejected_table: str,
                 future_skew: timedelta = FUTURE_SKEW, earliest: datetime = MIN_TIMESTAMP):
        from nightjar.ingest.validate import BatchBuilder

        self.loaded_at = loaded_at
        self.events_table = events_table
        self.rejected_table = rejected_table
        self.duck = DuckDBValidator(con=con.cursor(), latest=loaded_at + future_skew, earliest=earliest)
        self.python = BatchBuilder(loaded_at, future_skew, earliest)
        self._files: list[pa.Array] = []
        self._lines: list[pa.Array] = []
        self._texts: list[pa.Array] = []
        self._added: dict[str, int] = {}  # lines per file in the pending batch
        self.pending = 0
        self.counts: dict[str, list[int]] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="events-validate")
        self._in_flight: Future | None = None
        self._appends: list[Future] = []

    def close(self) -> None:
        if self._in_flight is not None:  # an aborted run: let DuckDB finish before closing
            self._in_flight.exception()
        self._pool.shutdown(wait=True)
        self.duck.close()

    def __len__(self) -> int:
        return self.pending + len(self.python)

    def add_text_lines(
        self, file: str, lines: list[str], first_line_no: int = 1, line_numbers: list[int] | None = None
    ) -> None:
        import numpy as np

        n = len(lines)
        if not n:
            return
        self._files.append(pa.array([file] * n, pa.string()))
        if line_numbers is None:
            self._lines.append(pa.array(np.arange(first_line_no, first_line_no + n, dtype=np.int64)))
        else:
            self._lines.append(pa.array(line_numbers, pa.int64()))
        self._texts.append(pa.array(lines, pa.string()))  # large_string is ~20x slower to build
        self._added[file] = self._added.get(file, 0) + n
        self.pending += n

    def add_arrow_lines(self, file: str, lines: pa.Array, first_line_no: int = 1) -> None:
        """Like :meth:`add_text_lines` for lines already in an Arrow string array (valid UTF-8)."""
        import numpy as np

        n = len(lines)
        if not n:
            return
        self._files.append(pa.array([file] * n, pa.string()))
        self._lines.append(pa.array(np.arange(first_line_no, first_line_no + n, dtype=np.int64)))
        self._texts.append(lines)
        self._added[file] = self._added.get(file, 0) + n
        self.pending += n

    def add_byte_lines(self, file: str, numbered, mapper=None) -> None:
        """Lines for the strict Python path; ``mapper`` as in ``BatchBuilder.add_numbered``."""
        loaded, rejected = self.python.add_numbered(numbered, file, mapper)
        self._count(file, loaded, rejected)

    def add_reject(self, raw_line: str | None, file: str, line_no: int | None, reason: str) -> None:
        self.python.add_reject(raw_line, file, line_no, reason)
        self._count(file, 0, 1)

    def _count(self, file: str, loaded: int, rejected: int) -> None:
        c = self.counts.setdefault(file, [0, 0])
        c[0] += loaded
        c[1] += rejected

    def flush(self, wait: bool = False) -> None:
        """Start validating the pending lines; collect the batch submitted before.

        One batch is in flight at a time. ``wait=True`` (the last call) also waits for the
        batch it submits and for every append, re-raising the first error."""
        if self._in_flight is not None and (wait or self.pending):
            self._collect(self._in_flight.result())
            self._in_flight = None
        if self.pending:
            # chunked columns (one chunk per file slice): DuckDB scans them as they are,
            # so the line text is never concatenated/copied in Python
            batch = pa.table(
                {
                    "_file": pa.chunked_array(self._files, pa.string()),
                    "_line": pa.chunked_array(self._lines, pa.int64()),
                    "line": pa.chunked_array(self._texts, pa.string()),
                }
            )
            added = self._added
            self._files, self._lines, self._texts, self.pending, self._added = [], [], [], 0, {}
            self._in_flight = self._pool.submit(self._validate, batch, added)
            if wait:
                self._collect(self._in_flight.result())
                self._in_flight = None
        py_events = self.python.take_events()
        if py_events is not None:
            self.append(self.events_table, py_events)
        py_rejected = self.python.take_rejected()
        if py_rejected is not None:
            self.append(self.rejected_table, py_rejected)
        if wait:
            appends, self._appends = self._appends, []
            for f in appends:
                f.result()

    def _validate(self, batch: pa.Table, added: dict[str, int]):
        bad = self.duck.insert_valid(batch, self.events_table, self.loaded_at)
        self.duck.checkpoint()
        return bad, added

    def append(self, table: str, rows: pa.Table) -> None:
        """Append Arrow ``rows`` to the warehouse table ``table`` (by column name), on the
        worker thread after what is already queued; ``flush(wait=True)`` waits for it."""
        self._appends.append(self._pool.submit(self._append_now, table, rows))

    def _append_now(self, table: str, rows: pa.Table) -> None:
        self.duck.con.register("rows", rows)
        try:
            self.duck.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM rows")
        finally:
            self.duck.con.unregister("rows")

    def _collect(self, result) -> None:
        bad, added = result
        if bad is not None:
            for f, cnt in zip(*_value_counts(bad.column("_file"))):
                added[f] -= cnt  # counted by _quarantine / the Python path instead
            self._quarantine(bad)
        for f, cnt in added.items():
            self._count(f, cnt, 0)

    def _quarantine(self, bad: pa.Table) -> None:
        """Rows the DuckDB query rejected: lines it cannot judge strictly go to the Python
        validator; the rest become ``raw.events_rejected`` rows."""
        import pyarrow.compute as pc

        from nightjar.ingest.validate import raw_text

        needs_py = pc.equal(bad.column("reason"), NEEDS_PYTHON)
        py_rows = bad.filter(needs_py)
        for f, ln, line in zip(*(py_rows.column(c).to_pylist() for c in ("_file", "_line", "raw_line"))):
            self.add_byte_lines(f, [(ln, line.encode("utf-8"))])
        quarantined = bad.filter(pc.invert(needs_py))
        if not quarantined.num_rows:
            return
        lines = quarantined.column("raw_line").to_pylist()
        reasons = quarantined.column("reason").to_pylist()
        raw = [raw_text(l.encode("utf-8")) if r == "line_too_large" else l for l, r in zip(lines, reasons)]
        n = quarantined.num_rows
        for f, cnt in zip(*_value_counts(quarantined.column("_file"))):
            self._count(f, 0, cnt)
        self.append(
            self.rejected_table,
            pa.Table.from_arrays(
                [
                    pa.array(raw, pa.string()),
                    quarantined.column("_file"),
                    quarantined.column("_line"),
                    quarantined.column("reason"),
                    pa.array([self.loaded_at] * n, REJECTED_SCHEMA.field("_loaded_at").type),
                ],
                schema=REJECTED_SCHEMA,
            ),
        )


def _value_counts(arr) -> tuple[list, list]:
    vc = arr.value_counts()
    return vc.field("values").to_pylist(), vc.field("counts").to_pylist()
