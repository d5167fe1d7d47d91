"""Segment / RudderStack exports (`<landing>/segment-logs/<source>/<received-day ms>/*.gz`)
loaded into raw.events beside native files: the mapping, the native rules and reason codes,
"never a file twice", late files in later received-day folders, and whole-file faults."""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import duckdb
import pytest

from nightjar.ingest import load_events
from nightjar.settings import get_settings
from querying import lake_connection
from segment_messages import common, day_ms, export_native_files, track, write_export

DAY = day_ms("2025-01-06")


def _rows(settings, sql: str, params: list | None = None) -> list[tuple]:
    """``sql`` against the raw layer: the warehouse, or with engine=spark the parquet lake."""
    if settings.engine == "spark":
        with lake_connection(settings.lake_url) as con:
            return con.execute(sql, params or []).fetchall()
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql, params or []).fetchall()


def _events(settings) -> dict[str, dict]:
    rows = _rows(settings, """select event_id, event_name, timestamp::varchar, received_at::varchar, anonymous_id,
                                     user_id, session_id, properties, context, _file from raw.events""")
    keys = ("event_name", "timestamp", "received_at", "anonymous_id", "user_id", "session_id", "properties",
            "context", "_file")
    return {r[0]: dict(zip(keys, r[1:])) for r in rows}


def test_each_call_type_maps_onto_the_native_columns(data_dir: Path) -> None:
    settings = get_settings()
    seg = settings.segment_dir
    messages = [
        common("m-page", "page", name="Academy", properties={"path": "/academy/", "title": "Analytics Academy"}),
        common("m-screen", "screen", name="Home", properties={"variation": "blue"}),
        common("m-identify", "identify", user_id="c_000042", traits={"email": "peter@example.com"}),
        track("m-viewed", "Product Viewed", {"product_id": "p_7", "sku": "G-32", "category": "Games",
                                             "name": "Monopoly", "price": 18.99, "currency": "USD"}),
        track("m-added", "Product Added", {"cart_id": "skdjsidjsdkdj29j", "product_id": "p_7", "price": 18.99,
                                           "quantity": 2}),
        track("m-checkout", "Checkout Started", {"order_id": "o_1", "value": 37.98, "revenue": 30.0,
                                                 "currency": "USD", "products": [{"product_id": "p_7"}]}),
        track("m-order", "Order Completed", {"checkout_id": "fksdjfsdjfisjf9sdfjsd9f", "order_id": "o_1",
                                             "total": 41.5, "revenue": 37.98, "shipping": 3.0, "tax": 0.52,
                                             "currency": "EUR",
                                             "products": [{"product_id": "p_7", "quantity": 2, "price": 18.99}]},
              user_id="c_000042"),
        track("m-search", "Products Searched", {"query": "blue roses"}),
        track("m-custom", "Coupon Entered", {"coupon_id": "may_deals_2016"}),
        # a server-side call: userId only (the spec requires one of anonymousId / userId)
        track("m-server", "Order Completed", {"order_id": "o_2", "total": 12.0, "currency": "USD"},
              anonymous_id=None, user_id="c_000043"),
        common("m-alias", "alias", user_id="c_000042", previousId="507f191e810c19729de860ea"),
        common("m-group", "group", user_id="c_000042", groupId="0e8c78ea9d97a7b8185e8632",
               traits={"name": "Initech"}),
    ]
    write_export(seg, "web", DAY, "events-0001.gz", messages)
    summary = load_events(settings)
    assert summary["files_loaded"] == 1 and summary["rows_loaded"] == len(messages)
    assert summary["rows_rejected"] == 0

    ev = _events(settings)
    names = {k: v["event_name"] for k, v in ev.items()}
    assert names == {
        "m-page": "page_viewed", "m-screen": "screen_viewed", "m-identify": "user_identified",
        "m-viewed": "product_viewed", "m-added": "product_added_to_cart", "m-checkout": "checkout_started",
        "m-order": "purchase_completed", "m-search": "search_performed", "m-custom": "Coupon Entered",
        "m-server": "purchase_completed", "m-alias": "alias", "m-group": "group",
    }
    order = ev["m-order"]
    assert order["timestamp"] == "2025-01-06 10:00:00+00" and order["received_at"] == "2025-01-06 10:00:01.25+00"
    assert (order["anonymous_id"], order["user_id"]) == ("507f191e810c19729de860ea", "c_000042")
    assert order["_file"] == f"segment-logs/web/{DAY}/events-0001.gz"
    props = json.loads(order["properties"])
    assert (props["order_id"], props["revenue"], props["currency"]) == ("o_1", 37.98, "EUR")
    assert props["products"] == [{"product_id": "p_7", "quantity": 2, "price": 18.99}]
    # revenue from `total` when the order has no `revenue`; the server call's anonymous_id is its userId
    server = ev["m-server"]
    assert json.loads(server["properties"])["revenue"] == 12.0
    assert (server["anonymous_id"], server["user_id"]) == ("c_000043", "c_000043")
    assert json.loads(ev["m-checkout"]["properties"])["cart_value"] == 37.98
    assert json.loads(ev["m-viewed"]["properties"])["price"] == 18.99
    assert json.loads(ev["m-screen"]["properties"]) == {"variation": "blue", "name": "Home"}
    assert json.loads(ev["m-alias"]["properties"]) == {"previous_id": "507f191e810c19729de860ea"}
    assert json.loads(ev["m-group"]["properties"]) == {"group_id": "0e8c78ea9d97a7b8185e8632"}
    assert ev["m-identify"]["properties"] is None  # traits are not stored

    ctx = json.loads(order["context"])
    assert ctx["user_agent"].startswith("Mozilla/5.0 (Macintosh")
    assert ctx["page"]["path"] == "/academy/" and ctx["campaign"]["source"] == "google"
    assert ctx["geo"] == {"country": "DE", "city": "Berlin"}
    assert ctx["device"] == {"id": "B5372DB0-C21E-11E4-8DFC-AA07A5B093DB", "type": "ios",
                             "manufacturer": "Apple", "model": "iPhone7,2"}
    assert (ctx["locale"], ctx["timezone"], ctx["screen"]["width"]) == ("en-US", "Europe/Berlin", 320)
    # personal data of the message never reaches raw: IP, traits, advertising id, coordinates
    for e in ev.values():
        text = e["context"] or ""
        assert "203.0.113.42" not in text and "peter@example.com" not in text and "7A3CBEA0" not in text
        assert "52.52" not in text
        assert "peter@example.com" not in (e["properties"] or "")


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_bad_messages_get_the_native_reason_codes_and_counts_reconcile(data_dir: Path, engine: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTJAR_ENGINE", engine)
    settings = get_settings()
    good = track("ok-1", "Product Viewed", {"product_id": "p_1"})
    cases: list[tuple[object, str]] = [
        ({k: v for k, v in good.items() if k != "messageId"}, "missing_event_id"),
        ({**good, "messageId": 17}, "event_id_not_string"),
        ({**good, "messageId": "m-1", "event": None}, "missing_event_name"),
        ({**good, "messageId": "m-2", "type": 5}, "event_name_not_string"),
        ({**good, "messageId": "m-3", "anonymousId": None, "userId": None}, "missing_anonymous_id"),
        ({**good, "messageId": "m-4", "timestamp": None, "originalTimestamp": None}, "missing_timestamp"),
        ({**good, "messageId": "m-5", "timestamp": "yesterday"}, "unparsable_timestamp"),
        ({**good, "messageId": "m-6", "timestamp": "2025-01-06T10:00:00"}, "timestamp_without_offset"),
        ({**good, "messageId": "m-7", "receivedAt": "06/01/2025"}, "unparsable_received_at"),
        ({**good, "messageId": "m-8", "timestamp": "1999-12-31T23:59:59Z"}, "timestamp_too_early"),
        ({**good, "messageId": "m-9", "timestamp": "2025-01-09T10:00:00Z"}, "timestamp_after_received_at"),
        ({**good, "messageId": "m-10", "timestamp": "2099-01-01T00:00:00Z", "receivedAt": "2099-01-01T00:00:00Z"},
         "future_timestamp"),
        ({**good, "messageId": "m-11", "properties": "oops"}, "properties_not_object"),
        ({**good, "messageId": "m-12", "context": ["page"]}, "context_not_object"),
        ({**good, "messageId": "m-13", "userId": 12345}, "user_id_not_string"),
        ({**good, "messageId": "m-\u0000"}, "nul_character"),
        ({**good, "messageId": "m-" + "x" * 300}, "id_too_long"),
        ({**good, "messageId": "m-15", "event": "E" * 200}, "name_too_long"),
        ('{"messageId": "m-16", "type": "track",', "invalid_json"),
        ('[{"messageId": "m-17"}]', "not_an_object"),
        ("   ", "empty_line"),
        (b'{"messageId": "m-18", "event": "\xff"}', "invalid_utf8"),
        ({**good, "messageId": "m-19", "properties": {"blob": "x" * 40_000}}, "line_too_large"),
    ]
    lines = [good] + [c for c, _ in cases]
    write_export(settings.segment_dir, "ios", DAY, "bad.gz", lines)
    summary = load_events(settings)
    assert (summary["lines_read"], summary["rows_loaded"], summary["rows_rejected"]) == (len(lines), 1, len(cases))
    got = _rows(settings, "select _line, reason, raw_line from raw.events_rejected order by _line")
    assert [(ln, r) for ln, r, _ in got] == [(i + 2, reason) for i, (_, reason) in enumerate(cases)]
    # the quarantine keeps the message as it arrived, not the mapped event
    assert got[0][2].startswith('{"anonymousId"') and '"messageId"' not in got[0][2]
    assert got[18][2] == '{"messageId": "m-16", "type": "track",'
    assert _rows(settings, "select lines_read, rows_loaded, rows_rejected from raw.events_load_log") == \
        [(len(lines), 1, len(cases))]


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_sources_late_folders_and_duplicates_load_each_file_once(data_dir: Path, engine: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTJAR_ENGINE", engine)
    settings = get_settings()
    seg = settings.segment_dir
    native = settings.events_dir / "dt=2025-01-06"
    native.mkdir(parents=True)
    with gzip.open(native / "batch-1.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"event_id": "n-1", "event_name": "page_viewed", "timestamp": "2025-01-06T09:00:00Z",
                             "anonymous_id": "a1"}) + "\n")
    write_export(seg, "web", DAY, "a.gz", [track("w-1", "Product Viewed"), track("w-2", "Product Added")])
    # the same message delivered again in another file, and by another source's export
    write_export(seg, "web", DAY, "b.gz", [track("w-2", "Product Added"), common("w-3", "page")])
    write_export(seg, "ios", DAY, "c.gz", [common("i-1", "screen"), track("w-1", "Product Viewed")])
    (seg / "web" / str(DAY) / "d.json.gz.tmp").write_bytes(b"in flight")  # not an export (yet)
    (seg / "web" / "not-a-day").mkdir()
    write_export(seg / "web", "not-a-day", 0, "x.gz", [track("x-1", "Product Viewed")])  # outside the layout

    first = load_events(settings)
    assert first["files_loaded"] == 4 and first["rows_loaded"] == 7 and first["rows_rejected"] == 0
    by_file = dict(_rows(settings, "select _file, count(*) from raw.events group by 1"))
    assert by_file == {"dt=2025-01-06/batch-1.jsonl.gz": 1, f"segment-logs/web/{DAY}/a.gz": 2,
                       f"segment-logs/web/{DAY}/b.gz": 2, f"segment-logs/ios/{DAY}/c.gz": 2}
    # per-source monitoring: the source is the second part of _file
    per_source = dict(_rows(settings, """select split_part(_file, '/', 2), sum(rows_loaded) from raw.events_load_log
                                         where _file like 'segment-logs/%' group by 1"""))
    assert per_source == {"web": 4, "ios": 2}

    # a late file for the same events lands in the next received-day folder
    write_export(seg, "web", DAY + 86_400_000, "late.gz", [track("w-4", "Checkout Started", {"value": 9.5}),
                                                           track("w-1", "Product Viewed")])
    second = load_events(settings)
    assert second["files_loaded"] == 1 and second["files_already_loaded"] == 4 and second["rows_loaded"] == 2
    third = load_events(settings)
    assert third["files_loaded"] == 0 and third["files_already_loaded"] == 5
    assert _rows(settings, "select count(*), count(distinct event_id) from raw.events") == [(9, 6)]
    assert _rows(settings, "select count(*) from raw.events_load_log") == [(5,)]


def test_whole_file_faults_of_segment_exports(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTJAR_MAX_FILE_LINES", "3")
    settings = get_settings()
    seg = settings.segment_dir
    outside = data_dir / "outside"
    outside.mkdir()
    secret = write_export(outside, "s", DAY, "secret.gz", [track("secret-1", "Product Viewed")])
    day = seg / "web" / str(DAY)
    day.mkdir(parents=True)
    os.symlink(secret, day / "link.gz")  # a symlinked file
    os.symlink(outside / "s" / str(DAY), seg / "web" / str(DAY + 86_400_000))  # a symlinked day folder
    good = gzip.compress(b"".join(json.dumps(track(f"g-{i}", "Product Viewed")).encode() + b"\n" for i in range(2)))
    (day / "truncated.gz").write_bytes(good[: len(good) - 12])  # loses the end of the gzip stream
    write_export(seg, "web", DAY, "too-many.gz", [track(f"t-{i}", "Product Viewed") for i in range(5)])

    summary = load_events(settings)
    faults = {f["file"]: f.get("fault") for f in summary["files"]}
    assert faults == {
        f"segment-logs/web/{DAY}/link.gz": "symlink",
        f"segment-logs/web/{DAY}/too-many.gz": "file_too_large",
        f"segment-logs/web/{DAY}/truncated.gz": "corrupt_gzip",
        f"segment-logs/web/{DAY + 86_400_000}": "symlink",
    }
    ids = {r[0] for r in _rows(settings, "select event_id from raw.events")}
    assert "secret-1" not in ids and not any(i.startswith("t-") for i in ids)
    assert ids <= {"g-0", "g-1"} and "g-0" in ids  # the lines decoded before the gzip error
    assert all("secret-1" not in r[0] for r in _rows(settings, "select raw_line from raw.events_rejected"))
    # symlinks are retried when they change, the rest is never read again
    again = load_events(settings)
    assert again["files_loaded"] == 0 and len(again["files_faulty_unchanged"]) == 2


def _mart_diff(con: duckdb.DuckDBPyConnection, table: str) -> tuple[int, int, int]:
    """Rows only in `nat`, only in `seg`, and the row count; load bookkeeping columns (`_…`:
    load times, files, line numbers) differ by construction and are left out."""
    schema, name = table.split(".")
    cols = [(c, t) for (c, t) in con.execute(
        "select column_name, data_type from information_schema.columns where table_catalog = 'nat' "
        "and table_schema = ? and table_name = ? order by ordinal_position", [schema, name]).fetchall()
        if not c.startswith("_")]
    # sums of doubles depend on the order a parallel aggregate adds them in: compared to 1e-6
    sel = ", ".join(f'round("{c}", 6)' if t in ("DOUBLE", "FLOAT") else f'"{c}"' for c, t in cols)
    diff = [con.execute(f"select count(*) from (select {sel} from {a}.{table} except all "
                        f"select {sel} from {b}.{table})").fetchone()[0] for a, b in (("nat", "seg"), ("seg", "nat"))]
    return diff[0], diff[1], con.execute(f"select count(*) from nat.{table}").fetchone()[0]


@pytest.mark.slow
def test_native_and_segment_delivery_give_identical_marts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    from datetime import date

    from test_dbt_project import start_dbt, wait_dbt

    from nightjar.ingest import load_shop
    from nightjar.simulator import SimConfig, simulate

    # a two-week shop: duplicates across files, late files, bots, local offsets; no malformed
    # lines (the reason codes are checked above, message by message)
    nat, seg = tmp_path / "nat", tmp_path / "seg"
    simulate(nat, start=date(2025, 1, 1), days=14, customers=150, seed=7,
             config=SimConfig(malformed_rate=0.0, late_file_rate=0.2))
    shutil.copytree(nat, seg)
    shutil.rmtree(seg / "landing" / "events")
    assert export_native_files(nat / "landing" / "events", seg / "landing" / "segment-logs") > 20

    work = tmp_path / "dbt"
    for name, data in (("nat", nat), ("seg", seg)):
        (work / name).mkdir(parents=True)
        settings = get_settings({"NIGHTJAR_DATA_DIR": str(data), "NIGHTJAR_WAREHOUSE": str(work / name / "warehouse.duckdb")})
        events = load_events(settings)
        assert events["rows_rejected"] == 0 and events["rows_loaded"] > 1000
        load_shop(settings)
    # unit tests run in test_dbt_project; data tests on the native side only (a cheap test)
    builds = [start_dbt(["build", "--exclude", "test_type:unit"], work, "nat"),
              start_dbt(["build", "--exclude", "test_type:unit", "test_type:data"], work, "seg")]
    for proc in builds:
        wait_dbt(proc)

    con = duckdb.connect()
    try:
        con.execute(f"attach '{work / 'nat' / 'warehouse.duckdb'}' as nat (read_only)")
        con.execute(f"attach '{work / 'seg' / 'warehouse.duckdb'}' as seg (read_only)")
        assert con.execute("select count(*) from nat.raw.events").fetchone() == \
            con.execute("select count(*) from seg.raw.events").fetchone()
        marts = [f"marts.{t}" for (t,) in con.execute(
            "select table_name from information_schema.tables where table_catalog = 'nat' "
            "and table_schema = 'marts' order by 1").fetchall()]
        assert "marts.fct_sessions" in marts and "marts.fct_daily_metrics" in marts
        diffs = {t: _mart_diff(con, t) for t in ["staging.stg_events", *marts]}
        # the Segment side's files are exports of two sources
        sources = {r[0] for r in con.execute("select distinct split_part(_file, '/', 2) from seg.raw.events").fetchall()}
    finally:
        con.close()
    assert all(a == 0 and b == 0 for a, b, _ in diffs.values()), diffs
    assert all(n > 0 for _, _, n in diffs.values()), diffs
    assert sources == {"web", "ios"}


def test_received_days_start_the_partitions_like_dt_folders(data_dir: Path) -> None:
    from nightjar.settings import landing_days

    settings = get_settings()
    write_export(settings.segment_dir, "web", day_ms("2025-01-03"), "a.gz", [track("a", "Product Viewed")])
    write_export(settings.segment_dir, "ios", day_ms("2025-01-05"), "b.gz", [track("b", "Product Viewed")])
    (settings.events_dir / "dt=2025-01-04").mkdir(parents=True)
    os.symlink(settings.segment_dir / "web" / str(day_ms("2025-01-03")),
               settings.segment_dir / "ios" / str(day_ms("2025-01-01")))  # never read: starts nothing
    assert landing_days(settings.events_dir, settings.segment_dir) == ["2025-01-03", "2025-01-04", "2025-01-05"]
    assert get_settings().partitions_start == "2025-01-03"
