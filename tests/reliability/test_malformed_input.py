"""Guarantee: bad input never stops the night; every line is loaded or quarantined with a
reason; counts reconcile files → raw → staging; shop anomalies are quarantined with a reason, not fatal.

The line-level corpus is the existing one (``tests/corpus``, 28 kinds, checked line by line
in ``tests/test_ingest_events.py``); this test puts it — plus the extra kinds below, a
simulated unreadable file and shop-side order anomalies — into a real simulated night and
runs the whole raw → dbt build path over it.
"""
from __future__ import annotations

import builtins
import gzip
import sqlite3
import zlib
from pathlib import Path

import pytest

from corpus import UNREADABLE, ev, j, lines, write_corpus

from .helpers import copy_shop, dbt_inprocess, ingest, query

CORPUS_DAY = "2025-03-02"  # inside the simulated period (2025-03-01 .. 2025-03-20)

REASONS = {
    "line_too_large", "empty_line", "invalid_utf8", "invalid_json", "not_an_object", "missing_event_id",
    "event_id_not_string", "missing_event_name", "event_name_not_string", "missing_anonymous_id",
    "anonymous_id_not_string", "missing_timestamp", "unparsable_timestamp", "timestamp_without_offset",
    "unparsable_received_at", "received_at_without_offset", "timestamp_too_early",
    "timestamp_after_received_at", "properties_not_object", "context_not_object", "user_id_not_string",
    "corrupt_gzip", "unreadable_file", "not_a_file",
    "future_timestamp", "nul_character", "id_too_long", "name_too_long", "symlink",
    "file_too_large", "load_failed",
}

_DEEP = ('{"event_id":"x-deep","event_name":"x","timestamp":"2025-03-02T10:00:00Z","anonymous_id":"a-x",'
         '"properties":{"d":' + "[" * 5000 + "]" * 5000 + "}}")
# Extra kinds beyond tests/corpus: name -> (bytes as written, expected outcome per line)
EXTRA: dict[str, tuple[bytes, list[str]]] = {
    "zero_bytes.jsonl.gz": (b"", []),                                   # 0-byte "gzip"
    "empty_member.jsonl.gz": (gzip.compress(b""), []),                  # valid gzip, no lines
    "deep_nesting.jsonl": (lines(_DEEP), ["ok"]),                       # 5000-deep arrays
    "nul_chars.jsonl": (lines(j(ev("x-nul", properties={"q": "a\u0000b"}))), ["ok"]),
    "raw_nul_byte.jsonl": (lines(j(ev("x-rn1"))[:-1] + "}\x00") + lines(j(ev("x-rn2"))), ["invalid_json", "ok"]),
    "utf16.jsonl": ((j(ev("x-u16")) + "\n").encode("utf-16"), ["invalid_utf8", "invalid_json"]),
    "lone_cr.jsonl": ((j(ev("x-cr1")) + "\r" + j(ev("x-cr2")) + "\n").encode(), ["invalid_json"]),
    "multi_member.jsonl.gz": (gzip.compress(lines(j(ev("x-mm1")))) + gzip.compress(lines(j(ev("x-mm2")))), ["ok", "ok"]),
    "gzip_garbage_tail.jsonl.gz": (gzip.compress(lines(j(ev("x-gt1")))) + b"garbage", ["ok", "corrupt_gzip"]),
    UNREADABLE: (lines(j(ev("x-unreadable"))), ["unreadable_file"]),    # open() fails (simulated)
}


def _shop_anomalies(shop_db: Path) -> dict[str, str]:
    """Orders the dbt models must survive: unknown customer, unknown currency, negative quantity."""
    con = sqlite3.connect(shop_db)
    try:
        cust = con.execute("select min(customer_id) from customers").fetchone()[0]
        prod = con.execute("select min(product_id) from products").fetchone()[0]
        ts = "2025-03-05 12:00:00.000000"
        rows = {
            "o_anom_ghost": ("c_does_not_exist", "USD", 10, 1),  # customer does not exist
            "o_anom_jpy": (cust, "JPY", 1500, 1),                # currency without a rate
            "o_anom_neg": (cust, "USD", -20, -2),                # negative quantity (a return booked as a line?)
        }
        for oid, (cid, cur, total, qty) in rows.items():
            con.execute("insert into orders values (?, ?, 'paid', ?, ?, ?, ?)", (oid, cid, cur, total, ts, ts))
            con.execute("insert into order_items values (?, 1, ?, ?, 10)", (oid, prod, qty))
        con.commit()
        return {k: v[0] for k, v in rows.items()}
    finally:
        con.close()


def _count_lines(path: Path) -> int | None:
    """Independent line count of an intact landing file (None for faulty ones)."""
    try:
        data = path.read_bytes()
        if path.name.endswith(".gz") and data:
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile):
        return None
    parts = data.split(b"\n")
    return len(parts) - 1 if parts[-1] == b"" else len(parts)


@pytest.mark.slow
def test_malformed_night_finishes_reconciles_and_flags(night, tmp_path, monkeypatch):
    import nightjar.ingest.discover as events_mod

    work = copy_shop(night.template, tmp_path / "data")
    events_dir = work / "landing" / "events"
    expected = write_corpus(events_dir, CORPUS_DAY)
    part = events_dir / f"dt={CORPUS_DAY}"
    for name, (content, exp) in EXTRA.items():
        (part / name).write_bytes(content)
        expected[f"dt={CORPUS_DAY}/{name}"] = exp
    outside = tmp_path / "outside.jsonl"  # a link out of the landing folder: never read
    outside.write_text(j(ev("x-outside")) + "\n")
    (part / "linked.jsonl").symlink_to(outside)
    anomalies = _shop_anomalies(work / "shop.sqlite")

    real_open = builtins.open

    def fake_open(file, *a, **kw):  # "unreadable permissions", simulated: we run as root
        if str(file).endswith(UNREADABLE):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **kw)

    monkeypatch.setattr(events_mod, "open", fake_open, raising=False)
    events, shop = ingest(work)
    monkeypatch.undo()
    wh = work / "warehouse.duckdb"

    # -- every line is loaded or quarantined with a known reason, exactly once
    outcomes: dict[str, dict[int, str]] = {}
    for f, line, what in query(wh, "select _file, _line, 'ok' from raw.events union all "
                                   "select _file, _line, reason from raw.events_rejected"):
        assert line not in outcomes.setdefault(f, {}), f"{f}:{line} produced twice"
        outcomes[f][line] = what
    for rel, exp in expected.items():
        if exp is None or rel.endswith(("directory.jsonl", UNREADABLE)):
            continue  # truncated gzip (length varies) and file faults: checked below
        got = outcomes.get(rel, {})
        assert [got[i] for i in sorted(got)] == exp, rel
    assert outcomes[f"dt={CORPUS_DAY}/directory.jsonl"] == {0: "not_a_file"}
    assert outcomes[f"dt={CORPUS_DAY}/{UNREADABLE}"] == {0: "unreadable_file"}
    assert outcomes[f"dt={CORPUS_DAY}/linked.jsonl"] == {0: "symlink"}
    assert query(wh, "select count(*) from raw.events where event_id = 'e-x-outside'")[0][0] == 0
    reasons = {r for (r,) in query(wh, "select distinct reason from raw.events_rejected")}
    assert reasons <= REASONS
    assert query(wh, "select count(*) from raw.events_rejected where reason is null or reason = ''")[0][0] == 0
    # clear messages for file-level faults
    msgs = dict(query(wh, "select reason, raw_line from raw.events_rejected where _line = 0 or reason = 'corrupt_gzip'"))
    assert "Permission denied" in msgs["unreadable_file"] and "is a directory" in msgs["not_a_file"]
    assert msgs["corrupt_gzip"].startswith("[corrupt_gzip] ")

    # -- files -> raw: per file, the load log, the tables and an independent line count agree
    log = {f: (r, l, q) for f, r, l, q in query(wh, "select _file, lines_read, rows_loaded, rows_rejected from raw.events_load_log")}
    for rel, (read, loaded, rejected) in log.items():
        got = outcomes.get(rel, {})
        assert read == loaded + rejected == len(got), rel
        assert loaded == sum(v == "ok" for v in got.values()), rel
        n = _count_lines(events_dir / rel)
        if n is not None and rel in expected and expected[rel] is not None and "directory" not in rel and UNREADABLE not in rel:
            assert n == read, rel
    sim_files = [p for p in events_dir.glob("dt=*/*") if p.name.endswith((".jsonl", ".jsonl.gz"))
                 and not p.name.startswith(".") and not p.is_symlink()]
    for p in sim_files:  # the simulator's own files (with its planted dirt) reconcile too
        rel = p.relative_to(events_dir).as_posix()
        if rel not in expected:
            assert log[rel][0] == _count_lines(p), rel
    n_events, n_rej = query(wh, "select (select count(*) from raw.events), (select count(*) from raw.events_rejected)")[0]
    assert sum(v[0] for v in log.values()) == n_events + n_rej == events["lines_read"]

    # -- the whole dbt build finishes on this input
    out = dbt_inprocess(wh, "build", work_dir=tmp_path / "dbt")
    failures = out.failures()
    shop_failures = {k: v for k, v in failures.items() if "order" in k or "customer" in k}
    other_failures = {k: v for k, v in failures.items() if k not in shop_failures}
    assert other_failures == {}, other_failures   # event-side garbage never fails the build

    # -- raw -> staging: one row per distinct event_id (dedup), nothing invented
    distinct_raw, staged, orphans = query(wh, """
        select (select count(distinct event_id) from raw.events),
               (select count(*) from staging.stg_events),
               (select count(*) from staging.stg_events s where not exists
                    (select 1 from raw.events r where r.event_id = s.event_id))""")[0]
    assert staged == distinct_raw and orphans == 0
    assert query(wh, "select count(*) from staging.stg_events where event_id = 'e-52'")[0][0] == 1  # dup lines

    # -- order anomalies are quarantined with their reason (a warning), and never fail the build
    rejected = dict(query(wh, "select order_id, reason from staging.stg_orders_rejected where order_id like 'o_anom_%'"))
    assert set(rejected) == set(anomalies) and rejected == {"o_anom_ghost": "unknown_customer", "o_anom_jpy": "unknown_currency",
                        "o_anom_neg": "negative_amount"}
    assert query(wh, "select count(*) from staging.stg_orders where order_id like 'o_anom_%'") == [(0,)]
    assert shop_failures == {}, shop_failures
    assert out.success
    assert [k for k in out.warnings() if "stg_orders_rejected" in k], "the quarantine raises a dbt warning"
