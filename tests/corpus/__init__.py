"""Malformed-line corpus for the events ingestion: one landing file per kind of fault.

``CASES`` maps a file name to ``(content, expected)``: ``content`` is the file's bytes
(``.gz`` names are gzip-compressed by :func:`write_corpus`, except where noted), and
``expected`` lists, per line, ``"ok"`` or the rejection reason. Run-time-only kinds
(a directory named like a file, an unreadable file, a truncated gzip) are built by
:func:`write_corpus` too. The corpus is generated rather than committed as files so that
CRLF endings, invalid UTF-8 and the 1 MB line survive any git or editor settings.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

OK = "ok"


def ev(i: int | str, **over) -> dict:
    base = {
        "event_id": f"e-{i}",
        "event_name": "page_viewed",
        "timestamp": "2025-01-01T10:00:00+02:00",
        "received_at": "2025-01-01T08:00:05Z",
        "anonymous_id": "anon-1",
        "user_id": None,
        "session_id": "s-1",
        "properties": {"path": "/"},
        "context": {"page": {"url": "https://shop.example/", "path": "/"}, "user_agent": "Mozilla/5.0"},
    }
    for k, v in over.items():
        if v is ...:
            base.pop(k, None)
        else:
            base[k] = v
    return base


def j(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def lines(*items: str, eol: str = "\n") -> bytes:
    return "".join(f"{x}{eol}" for x in items).encode("utf-8")


BIG_PROPS = {"blob": "x" * (1024 * 1024)}
NEAR_LIMIT = {"blob": "y" * (32 * 1024 - 400)}

CASES: dict[str, tuple[bytes, list[str]]] = {
    "good.jsonl": (
        lines(j(ev(1)), j(ev(2, timestamp="2025-01-01T08:00:00.123456Z", received_at=...)),
              j(ev(3, user_id="c_000001", timestamp="2025-01-01 09:30:00+0130"))),
        [OK, OK, OK],
    ),
    "good.jsonl.gz": (lines(*(j(ev(f"gz{i}")) for i in range(5))), [OK] * 5),
    "broken_json.jsonl": (
        lines('{"event_id": "x", "event_name": "a"', j(ev(4)) + " trailing", "{'event_id': 'x'}",
              '{"event_id":"e","event_name":"n","timestamp":"2025-01-01T00:00:00Z","anonymous_id":"a",}',
              '{"event_id":"e","event_name":"n","timestamp":"2025-01-01T00:00:00Z","anonymous_id":"a","properties":{"v":NaN}}',
              '{"event_id":"e","event_name":"n","timestamp":"2025-01-01T00:00:00Z","anonymous_id":"a","properties":{"v":[1,2,]}}',
              '{"event_id":"e","event_name":"n","timestamp":"2025-01-01T00:00:00Z","anonymous_id":"a","x":-Infinity}',
              # DuckDB's parser reads NaN/Infinity in any letter case; strict JSON has none
              '{"event_id":"e","event_name":"n","timestamp":"2025-01-01T00:00:00Z","anonymous_id":"a","properties":{"v":nAn}}',
              '{"event_id":"e","event_name":"n","timestamp":"2025-01-01T00:00:00Z","anonymous_id":"a","properties":{"v":[1, INFINITY]}}',
              '{"event_id":"e","event_name":"n","timestamp":"2025-01-01T00:00:00Z","anonymous_id":"a","x": [ -inf ]}'),
        ["invalid_json"] * 10,
    ),
    "not_json_at_all.jsonl": (lines("hello world", "<html><body>oops</body></html>", "event_id=1,event_name=x"), ["invalid_json"] * 3),
    "not_an_object.jsonl": (lines("[1, 2, 3]", '"a string"', "42", "null", "true", "[]"), ["not_an_object"] * 6),
    "missing_required.jsonl": (
        lines(j(ev(5, event_id=...)), j(ev(6, event_id="")), j(ev(7, event_id="   ")), j(ev(8, event_id=None)),
              j(ev(9, event_name=...)), j(ev(10, event_name="")), j(ev(11, anonymous_id=...)),
              j(ev(12, anonymous_id=None)), j(ev(13, timestamp=...)), j(ev(14, timestamp=None)), j(ev(15, timestamp=""))),
        ["missing_event_id"] * 4 + ["missing_event_name"] * 2 + ["missing_anonymous_id"] * 2 + ["missing_timestamp"] * 3,
    ),
    "wrong_types.jsonl": (
        lines(j(ev(16, event_id=123)), j(ev(17, event_name=["x"])), j(ev(18, anonymous_id=5)),
              j(ev(19, user_id=42)), j(ev(20, user_id={"id": "c_1"})), j(ev(21, timestamp=1735689600)),
              j(ev(22, session_id=7)), j(ev(23, user_id="c_000002"))),
        ["event_id_not_string", "event_name_not_string", "anonymous_id_not_string", "user_id_not_string",
         "user_id_not_string", "unparsable_timestamp", OK, OK],
    ),
    "timestamp_without_offset.jsonl": (
        lines(j(ev(24, timestamp="2025-01-01T10:00:00")), j(ev(25, timestamp="2025-01-01")),
              j(ev(26, timestamp="2025-01-01 10:00:00.5")), j(ev(27, received_at="2025-01-01T10:00:00"))),
        ["timestamp_without_offset"] * 3 + ["received_at_without_offset"],
    ),
    "timestamp_unparsable.jsonl": (
        lines(j(ev(28, timestamp="yesterday")), j(ev(29, timestamp="2025-02-30T10:00:00Z")),
              j(ev(30, timestamp="2025-01-01T25:00:00Z")), j(ev(31, timestamp=" 2025-01-01T10:00:00Z")),
              j(ev(32, received_at="soon")), j(ev(33, received_at=17))),
        ["unparsable_timestamp"] * 4 + ["unparsable_received_at"] * 2,
    ),
    "timestamp_far_future.jsonl": (
        lines(j(ev(34, timestamp="2030-01-01T00:00:00Z", received_at="2025-01-01T00:00:00Z")),
              j(ev(35, timestamp="2025-01-02T07:59:00Z", received_at="2025-01-01T08:00:00Z")),
              j(ev(36, timestamp="2025-01-02T08:00:01Z", received_at="2025-01-01T08:00:00Z")),
              # no received_at: it defaults to the timestamp, so only the load-time rule applies
              j(ev(37, timestamp="2999-01-01T00:00:00Z", received_at=...)),
              j(ev(72, timestamp="2025-01-01T00:00:00Z", received_at="2999-01-01T00:00:00Z"))),
        ["timestamp_after_received_at", OK, "timestamp_after_received_at", "future_timestamp", "future_timestamp"],
    ),
    "timestamp_too_early.jsonl": (
        lines(j(ev(38, timestamp="1999-12-31T23:59:59Z", received_at=...)), j(ev(39, timestamp="1970-01-01T00:00:00Z")),
              j(ev(40, timestamp="2000-01-01T01:00:00+02:00", received_at=...)),
              j(ev(41, timestamp="2000-01-01T00:00:00Z", received_at=...))),
        ["timestamp_too_early"] * 3 + [OK],
    ),
    "properties_not_object.jsonl": (
        lines(j(ev(42, properties=[1, 2])), j(ev(43, properties="x=1")), j(ev(44, properties=5)),
              j(ev(45, context=[])), j(ev(46, context="ctx")), j(ev(47, properties=None, context=None)),
              j(ev(48, properties=..., context=...))),
        ["properties_not_object"] * 3 + ["context_not_object"] * 2 + [OK, OK],
    ),
    "nested_nulls.jsonl": (
        lines(j(ev(49, properties={"a": None, "b": {"c": None, "d": [None]}}, context={"page": None, "geo": {"city": None}}))),
        [OK],
    ),
    "unknown_event_name.jsonl": (lines(j(ev(50, event_name="Totally-New Event")), j(ev(51, event_name="x"))), [OK, OK]),
    "duplicates.jsonl": (lines(j(ev(52)), j(ev(52)), j(ev(52))), [OK, OK, OK]),
    "crlf.jsonl": (lines(j(ev(53)), j(ev(54)), "", j(ev(55)), eol="\r\n"), [OK, OK, "empty_line", OK]),
    "bom.jsonl": (b"\xef\xbb\xbf" + lines(j(ev(56)), j(ev(57))), [OK, OK]),
    "invalid_utf8.jsonl": (
        lines(j(ev(58))) + j(ev(59, properties={"q": "AB"})).encode().replace(b"AB", b"A\xff\xfeB") + b"\n" + lines(j(ev(60))),
        [OK, "invalid_utf8", OK],
    ),
    "empty.jsonl": (b"", []),
    "empty_lines.jsonl": (lines("", j(ev(61)), "   ", "\t", j(ev(62)), ""), ["empty_line", OK, "empty_line", "empty_line", OK, "empty_line"]),
    "huge_line.jsonl": (lines(j(ev(63, properties=BIG_PROPS)), j(ev(64, properties=NEAR_LIMIT)), j(ev(65))),
                        ["line_too_large", OK, OK]),
    "only_bad_lines.jsonl": (lines("{", "}", "[]", j(ev(66, event_id=...))), ["invalid_json", "invalid_json", "not_an_object", "missing_event_id"]),
    "unicode.jsonl": (lines(j(ev(67, properties={"q": "café ☕ 😀", "esc": "tab\there"})),
                            '{"event_id":"e-68","event_name":"search_performed","timestamp":"2025-01-01T10:00:00Z","anonymous_id":"a","properties":{"q":"\\u00e9\\ud83d\\ude00"}}',
                            '{"event_id":"e-69","event_name":"x","timestamp":"2025-01-01T10:00:00Z","anonymous_id":"a","properties":{"q":"\\ud800"}}'),
                      [OK, OK, "invalid_json"]),
    "no_final_newline.jsonl": (lines(j(ev(70))) + j(ev(71)).encode(), [OK, OK]),
    "ids_and_names.jsonl": (
        lines(j(ev("x" * 254, anonymous_id="a" * 256, user_id="u" * 256, session_id="s" * 256, event_name="n" * 128)),
              j(ev("x" * 255)), j(ev(73, anonymous_id="a" * 257)), j(ev(74, user_id="u" * 300)),
              j(ev(75, session_id="s" * 257)), j(ev(76, event_name="n" * 129)),
              j(ev("77\u0000")), j(ev(78, event_name="page_\u0000viewed")), j(ev(79, anonymous_id="\u0000")),
              j(ev(80, user_id="c\u0000")), j(ev(81, session_id="s\u0000"))),
        [OK, "id_too_long", "id_too_long", "id_too_long", "id_too_long", "name_too_long"] + ["nul_character"] * 5,
    ),
}

# kinds that only exist at run time: name -> (expected reasons, fault)
TRUNCATED_GZ = "truncated.jsonl.gz"     # 3 complete lines then a cut: [ok, ok, ok, corrupt_gzip]
NOT_GZIP = "not_gzip.jsonl.gz"          # plain text named .gz: [corrupt_gzip]
DIRECTORY = "directory.jsonl"           # a directory named like a file: [not_a_file]
UNREADABLE = "unreadable.jsonl"         # chmod 000 (skipped when running as root)


def write_corpus(events_dir: Path, day: str = "2025-01-01") -> dict[str, list[str]]:
    """Write the corpus into ``events_dir/dt=<day>/``; return ``{relpath: expected}``."""
    part = events_dir / f"dt={day}"
    part.mkdir(parents=True, exist_ok=True)
    expected: dict[str, list[str]] = {}
    for name, (content, exp) in CASES.items():
        data = gzip.compress(content) if name.endswith(".gz") else content
        (part / name).write_bytes(data)
        expected[f"dt={day}/{name}"] = exp
    full = gzip.compress(lines(*(j(ev(f"tr{i}")) for i in range(400))), compresslevel=1)
    (part / TRUNCATED_GZ).write_bytes(full[: len(full) // 2])
    expected[f"dt={day}/{TRUNCATED_GZ}"] = None  # type: ignore[assignment]  (checked separately)
    (part / NOT_GZIP).write_bytes(lines(j(ev(99))))
    expected[f"dt={day}/{NOT_GZIP}"] = ["corrupt_gzip"]
    (part / DIRECTORY).mkdir()
    expected[f"dt={day}/{DIRECTORY}"] = ["not_a_file"]
    # ignored entries: not batch files, hidden, in-flight, outside a dt= partition
    (part / "README.txt").write_text("not a batch")
    (part / ".hidden.jsonl").write_text(j(ev(100)) + "\n")
    (part / "inflight.jsonl.tmp").write_text(j(ev(101)) + "\n")
    (events_dir / "stray.jsonl").write_text(j(ev(102)) + "\n")
    (events_dir / "not-a-partition").mkdir(exist_ok=True)
    (events_dir / "not-a-partition" / "x.jsonl").write_text(j(ev(103)) + "\n")
    return expected
