"""A tiny, hand-checked raw layer for the dbt project (schema ``raw``, ARCHITECTURE.md).

``build_base(path)`` creates a DuckDB file with the exact raw schemas that dlt writes and
three days of events and orders; ``append_increment(path)`` adds the next night's load
(a new day, late events up to 3 days old, retried duplicates, an anonymous_id that gets
identified, a refund of an old order). The expected marts are worked out by hand in
``tests/test_dbt_project.py`` next to the assertions. ``append_night3(path)`` adds a third
night (a device that changes hands, a late file that moves a visitor to an earlier cohort).
``append_attribution_night(path, "A" | "B")`` are two other nights after the base load, for
attribution (late sessions, a device identified, orders cancelled, quarantined and new).
``table_diff`` compares one table between two attached warehouses (a build and its oracle).

Days: D1 = 2025-01-06 (Monday), D2 = 2025-01-07, D3 = 2025-01-08, D4 = 2025-01-09.

Base events (non-bot), per user_key:
  c1 (anon a1, identified on its 3rd event, earlier anonymous events stitched to c1):
     D1 10:00:00 page_viewed, 10:00:05 product_viewed,            (anonymous)
        10:30:05 product_added_to_cart   (gap exactly 30 min: same session)
        11:00:06 checkout_started        (gap 30 min + 1 s: new session)
        11:00:20 purchase_completed o1
  a2 (never identified in the base load):
     D1 23:50:00 page_viewed, D2 00:10:00 page_viewed (crosses midnight: one session on D1)
     D2 00:10:00 page_viewed is delivered twice (same event_id)
     D3 09:00:00 page_viewed (a single-event bounce)
  c2 (anon a4): D2 12:00:00 page_viewed, 12:00:03 page_viewed (2 page views: engaged)
  bot b1 (Googlebot user agent): D2 and D3 page views, excluded everywhere.
Orders: o1 c1 USD 100 D1 paid; o2 c2 EUR 50 D2 refunded; o3 c2 GBP 20 D2 cancelled;
        o4 c1 USD 30 D3 delivered.
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb

RAW_DDL = """
create schema if not exists raw;
create table if not exists raw.events (
    event_id varchar, event_name varchar, "timestamp" timestamptz, received_at timestamptz,
    anonymous_id varchar, user_id varchar, session_id varchar,
    properties json, context json,
    _file varchar, _line bigint, _loaded_at timestamptz
);
create table if not exists raw.events_rejected (
    raw_line varchar, _file varchar, _line bigint, reason varchar, _loaded_at timestamptz
);
create table if not exists raw.events_load_log (
    _file varchar, lines_read bigint, rows_loaded bigint, rows_rejected bigint,
    load_id varchar, _loaded_at timestamptz
);
-- Shop tables as dlt's sql_database source writes them from SQLAlchemy DateTime columns:
-- naive TIMESTAMP (UTC by convention).
create table if not exists raw.customers (
    customer_id varchar, email varchar, country varchar,
    created_at timestamp, updated_at timestamp, _dlt_load_id varchar, _dlt_id varchar
);
create table if not exists raw.products (
    product_id varchar, name varchar, category varchar, price decimal(12, 2),
    updated_at timestamp, _dlt_load_id varchar, _dlt_id varchar
);
create table if not exists raw.orders (
    order_id varchar, customer_id varchar, status varchar, currency varchar,
    total_amount decimal(12, 2), created_at timestamp, updated_at timestamp,
    _dlt_load_id varchar, _dlt_id varchar
);
create table if not exists raw.order_items (
    order_id varchar, line_number bigint, product_id varchar, quantity bigint,
    unit_price decimal(12, 2), _dlt_load_id varchar, _dlt_id varchar
);
"""

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Safari/605.1.15"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1"
BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

LOAD_1 = "2025-01-09 02:00:00+00"
LOAD_2 = "2025-01-10 02:00:00+00"
LOAD_3 = "2025-01-11 02:00:00+00"


def _ctx(path: str, ua: str = BROWSER, country: str = "DE", utm: str | None = None,
         referrer: str | None = None) -> str:
    ctx: dict = {
        "page": {"url": f"https://shop.example{path}", "path": path, "referrer": referrer,
                 "title": path.strip("/") or "home"},
        "user_agent": ua,
        "locale": "en-US",
        "timezone": "Europe/Berlin",
        "geo": {"country": country, "city": "Berlin"},
    }
    if utm:
        ctx["campaign"] = {"source": utm, "medium": "cpc", "name": "winter"}
    return json.dumps(ctx)


# (event_id, event_name, timestamp, received_at, anonymous_id, user_id, properties, context, file)
BASE_EVENTS = [
    # c1 on a1 — rows deliberately out of order.
    ("e103", "Product Added To Cart", "2025-01-06T10:30:05Z", None, "a1", "c1",
     {"product_id": "p1", "quantity": 2, "price": 50}, _ctx("/p/p1"), "dt=2025-01-06/b1.jsonl"),
    ("e101", " Page Viewed ", "2025-01-06T11:00:00+01:00", None, "a1", None,
     {}, _ctx("/", utm="google", referrer="https://google.com"), "dt=2025-01-06/b1.jsonl"),
    ("e102", "product-viewed", "2025-01-06T10:00:05Z", None, "a1", None,
     {"product_id": "p1", "category": "books", "price": 50.0}, _ctx("/p/p1"), "dt=2025-01-06/b1.jsonl"),
    ("e105", "purchase_completed", "2025-01-06T11:00:20Z", None, "a1", "c1",
     {"order_id": "o1", "revenue": 100.0, "currency": "USD"}, _ctx("/checkout/done"), "dt=2025-01-06/b1.jsonl"),
    ("e104", "checkout_started", "2025-01-06T11:00:06Z", None, "a1", "c1",
     {"cart_value": 100.0}, _ctx("/checkout"), "dt=2025-01-06/b1.jsonl"),
    # a2: a session across midnight, a retried delivery, a bounce on D3.
    ("e201", "page_viewed", "2025-01-06T23:50:00Z", None, "a2", None, {}, _ctx("/blog", PHONE, "FR"),
     "dt=2025-01-06/b2.jsonl"),
    ("e202", "page_viewed", "2025-01-07T00:10:00Z", "2025-01-07T00:10:09Z", "a2", None, {},
     _ctx("/blog/2", PHONE, "FR"), "dt=2025-01-07/b1.jsonl"),
    ("e202", "page_viewed", "2025-01-07T00:10:00Z", "2025-01-07T00:10:02Z", "a2", None, {},
     _ctx("/blog/2", PHONE, "FR"), "dt=2025-01-07/b2.jsonl"),
    ("e203", "page_viewed", "2025-01-08T09:00:00Z", None, "a2", None, {}, _ctx("/", PHONE, "FR"),
     "dt=2025-01-08/b1.jsonl"),
    # c2 on a4: two page views 3 s apart (engaged by page views).
    ("e401", "page_viewed", "2025-01-07T12:00:00Z", None, "a4", "c2", {}, _ctx("/", country="GB"),
     "dt=2025-01-07/b1.jsonl"),
    ("e402", "page_viewed", "2025-01-07T12:00:03Z", None, "a4", "c2", {}, _ctx("/sale", country="GB"),
     "dt=2025-01-07/b1.jsonl"),
    # a bot
    ("e901", "page_viewed", "2025-01-07T03:00:00Z", None, "b1", None, {}, _ctx("/", BOT, "US"),
     "dt=2025-01-07/b1.jsonl"),
    ("e902", "page_viewed", "2025-01-08T03:00:00Z", None, "b1", None, {}, _ctx("/", BOT, "US"),
     "dt=2025-01-08/b1.jsonl"),
]

INCREMENT_EVENTS = [
    # a2 identifies as c3 on D4: all of a2's earlier anonymous events now belong to c3.
    ("e204", "user_identified", "2025-01-09T08:00:00Z", None, "a2", "c3", {}, _ctx("/login", PHONE, "FR"),
     "dt=2025-01-09/b1.jsonl"),
    # late (3 days) event for c1 inside the D1 gap: merges c1's two D1 sessions into one.
    ("e106", "page_viewed", "2025-01-06T10:45:00Z", None, "a1", None, {}, _ctx("/about"),
     "dt=2025-01-06/late-1.jsonl"),
    # late (2 days) event for c2 on D2, 14:00: a new single-event session (bounce).
    ("e403", "page_viewed", "2025-01-07T14:00:00Z", None, "a4", "c2", {}, _ctx("/faq", country="GB"),
     "dt=2025-01-07/late-1.jsonl"),
    # retried deliveries of an already loaded event: one later, one *earlier* received_at.
    ("e102", "product-viewed", "2025-01-06T10:00:05Z", "2025-01-06T10:00:09Z", "a1", None,
     {"product_id": "p1", "category": "books", "price": 50.0}, _ctx("/p/p1"), "dt=2025-01-06/late-2.jsonl"),
    ("e202", "page_viewed", "2025-01-07T00:10:00Z", "2025-01-07T00:10:01Z", "a2", None, {},
     _ctx("/blog/2", PHONE, "FR"), "dt=2025-01-07/late-2.jsonl"),
    # a new anonymous visitor on D4, a bot, and c2 again on D4.
    ("e501", "page_viewed", "2025-01-09T10:00:00Z", None, "a5", None, {}, _ctx("/", utm="newsletter"),
     "dt=2025-01-09/b1.jsonl"),
    ("e903", "page_viewed", "2025-01-09T03:00:00Z", None, "b1", None, {}, _ctx("/", BOT, "US"),
     "dt=2025-01-09/b1.jsonl"),
    ("e404", "page_viewed", "2025-01-09T12:00:00Z", None, "a4", "c2", {}, _ctx("/", country="GB"),
     "dt=2025-01-09/b1.jsonl"),
]

# The third night (D5 = 2025-01-10): cases the second night does not have.
NIGHT3_EVENTS = [
    # device a1 changes hands: c4 logs in on it, so a1's *anonymous* events (e101, e102, e106
    # on D1) move from c1 to c4; c1 keeps the events that carry its user_id.
    ("e107", "user_identified", "2025-01-10T10:00:00Z", None, "a1", "c4", {}, _ctx("/login"),
     "dt=2025-01-10/b1.jsonl"),
    # a late file (2 days) for the anonymous visitor a5, first seen on D4: its first event is
    # now on D2, so a5 leaves the D4 cohort (which disappears) for the D2 cohort.
    ("e502", "page_viewed", "2025-01-07T09:00:00Z", None, "a5", None, {}, _ctx("/", utm="newsletter"),
     "dt=2025-01-07/late-3.jsonl"),
    # c3 (device a2) back on D5.
    ("e205", "page_viewed", "2025-01-10T09:00:00Z", None, "a2", None, {}, _ctx("/", PHONE, "FR"),
     "dt=2025-01-10/b1.jsonl"),
]

CUSTOMERS = [
    ("c1", "Alice@Example.com", "de", "2025-01-01 09:00:00", "2025-01-01 09:00:00"),
    ("c2", "bob@example.com", "GB", "2025-01-02 09:00:00", "2025-01-02 09:00:00"),
    ("c3", "carol@example.com", "FR", "2025-01-03 09:00:00", "2025-01-03 09:00:00"),
    ("c4", "dave@example.com", "US", "2025-01-04 09:00:00", "2025-01-04 09:00:00"),
]
PRODUCTS = [
    ("p1", "Book", "books", 50.00, "2025-01-01 00:00:00"),
    ("p2", "Pen", "office", 10.00, "2025-01-01 00:00:00"),
]
# order_id, customer_id, status, currency, total, created_at, updated_at
ORDERS = [
    ("o1", "c1", "paid", "USD", 100.00, "2025-01-06 11:00:19", "2025-01-06 11:00:19"),
    ("o2", "c2", "refunded", "EUR", 50.00, "2025-01-07 12:30:00", "2025-01-08 10:00:00"),
    ("o3", "c2", "cancelled", "GBP", 20.00, "2025-01-07 13:00:00", "2025-01-07 14:00:00"),
    ("o4", "c1", "delivered", "USD", 30.00, "2025-01-08 23:59:59", "2025-01-08 23:59:59"),
]
ORDER_ITEMS = [
    ("o1", 1, "p1", 2, 50.00),
    ("o2", 1, "p1", 1, 50.00),
    ("o3", 1, "p2", 2, 10.00),
    ("o4", 1, "p2", 3, 10.00),
]
INCREMENT_ORDERS = [
    ("o5", "c2", "paid", "GBP", 10.00, "2025-01-09 12:05:00", "2025-01-09 12:05:00"),
]
INCREMENT_ORDER_ITEMS = [("o5", 1, "p2", 1, 10.00)]


def _insert_events(con: duckdb.DuckDBPyConnection, events, loaded_at: str) -> None:
    lines: dict[str, int] = {}
    for (event_id, name, ts, received, anon, user, props, ctx, file) in events:
        lines[file] = lines.get(file, 0) + 1
        con.execute(
            "insert into raw.events values (?, ?, cast(? as timestamptz), cast(coalesce(?, ?) as timestamptz),"
            " ?, ?, null, ?, ?, ?, ?, cast(? as timestamptz))",
            [event_id, name, ts, received, ts, anon, user, json.dumps(props), ctx, file, lines[file], loaded_at],
        )
    for file, n in lines.items():
        con.execute("insert into raw.events_load_log values (?, ?, ?, 0, ?, cast(? as timestamptz))",
                    [file, n, n, loaded_at, loaded_at])


def _insert_shop(con, load_id: str, customers=(), products=(), orders=(), items=()) -> None:
    _insert_loaded(con, "customers", "?, ?, ?, cast(? as timestamp), cast(? as timestamp)", customers, load_id, "c")
    _insert_loaded(con, "products", "?, ?, ?, ?, cast(? as timestamp)", products, load_id, "p")
    _insert_loaded(con, "orders", "?, ?, ?, ?, ?, cast(? as timestamp), cast(? as timestamp)", orders, load_id, "o")
    _insert_loaded(con, "order_items", "?, ?, ?, ?, ?", items, load_id, "i")


def _insert_loaded(con, table: str, values: str, rows, load_id: str, tag: str) -> None:
    """Insert `rows` into raw.`table`, each followed by dlt's _dlt_load_id and a unique _dlt_id."""
    for i, row in enumerate(rows):
        con.execute(f"insert into raw.{table} values ({values}, ?, ?)", [*row, load_id, f"{load_id}-{tag}{i}"])


def table_diff(con: duckdb.DuckDBPyConnection, table: str, left: str, right: str) -> tuple[int, int, int]:
    """Rows of `table` only in attached catalog `left`, rows only in `right`, and its row count in
    `left`. Doubles are rounded to 9 decimals (summation order may differ between engines' plans)."""
    schema, name = table.split(".")
    cols = con.execute("select column_name, data_type from information_schema.columns "
                       "where table_catalog = ? and table_schema = ? and table_name = ? "
                       "order by ordinal_position", [left, schema, name]).fetchall()
    assert cols, table
    sel = ", ".join(f'round("{c}", 9)' if t in ("DOUBLE", "FLOAT") else f'"{c}"' for c, t in cols)
    only_left = con.execute(f"select count(*) from (select {sel} from {left}.{table} except all "
                            f"select {sel} from {right}.{table})").fetchone()[0]
    only_right = con.execute(f"select count(*) from (select {sel} from {right}.{table} except all "
                             f"select {sel} from {left}.{table})").fetchone()[0]
    n = con.execute(f"select count(*) from {left}.{table}").fetchone()[0]
    return only_left, only_right, n


def build_base(path: str | Path) -> Path:
    """Create the raw schema with the base (first night's) load."""
    path = Path(path)
    con = duckdb.connect(str(path))
    try:
        con.execute(RAW_DDL)
        _insert_events(con, BASE_EVENTS, LOAD_1)
        con.execute("insert into raw.events_rejected values ('{not json', 'dt=2025-01-07/b1.jsonl', 99,"
                    " 'not a JSON object', cast(? as timestamptz))", [LOAD_1])
        _insert_shop(con, "load-1", CUSTOMERS, PRODUCTS, ORDERS, ORDER_ITEMS)
    finally:
        con.close()
    return path


def append_increment(path: str | Path) -> Path:
    """The second night's load, applied the way dlt applies it (append events, merge shop rows)."""
    path = Path(path)
    con = duckdb.connect(str(path))
    try:
        _insert_events(con, INCREMENT_EVENTS, LOAD_2)
        # Merge on the primary key: o1 is refunded two days after it was placed.
        con.execute("update raw.orders set status = 'refunded', updated_at = cast('2025-01-09 15:00:00' as timestamp),"
                    " _dlt_load_id = 'load-2' where order_id = 'o1'")
        _insert_shop(con, "load-2", orders=INCREMENT_ORDERS, items=INCREMENT_ORDER_ITEMS)
    finally:
        con.close()
    return path


def append_night3(path: str | Path) -> Path:
    """The third night's load (after append_increment): a device handover and a late file
    that moves a visitor's first day to an earlier cohort. No shop changes."""
    path = Path(path)
    con = duckdb.connect(str(path))
    try:
        _insert_events(con, NIGHT3_EVENTS, LOAD_3)
    finally:
        con.close()
    return path


# Attribution nights (after the base load, instead of append_increment / append_night3).
# Night A (load 2):
ATTRIBUTION_NIGHT_A_EVENTS = [
    # a late session of c2 on D1, referred by facebook (organic social): inside the lookback
    # window of o2 (D2 12:30), before its direct D2 session, so o2's first touch moves to it
    ("e410", "page_viewed", "2025-01-06T15:00:00Z", None, "a4", "c2", {},
     _ctx("/", country="GB", referrer="https://www.facebook.com/"), "dt=2025-01-06/late-a.jsonl"),
    # c2 again on D4, five minutes before its new order o6
    ("e405", "page_viewed", "2025-01-09T12:00:00Z", None, "a4", "c2", {}, _ctx("/", country="GB"),
     "dt=2025-01-09/b1.jsonl"),
    # a new device a7, anonymous, on D3 from a bing search (organic search)
    ("e701", "page_viewed", "2025-01-08T10:00:00Z", None, "a7", None, {},
     _ctx("/", referrer="https://www.bing.com/"), "dt=2025-01-08/late-a.jsonl"),
]
ATTRIBUTION_NIGHT_A_ORDERS = [("o6", "c2", "paid", "USD", 40.00, "2025-01-09 12:05:00", "2025-01-09 12:05:00")]
# Night B (load 3):
ATTRIBUTION_NIGHT_B_EVENTS = [
    # c1 logs in on a7: a7's anonymous D3 session becomes c1's, inside o4's window (D3 23:59:59)
    ("e702", "user_identified", "2025-01-09T09:00:00Z", None, "a7", "c1", {}, _ctx("/login"),
     "dt=2025-01-09/b2.jsonl"),
    # a late event after o6 in the session o6 was placed in: that session (a touchpoint of o6)
    # now ends later and was loaded later
    ("e406", "page_viewed", "2025-01-09T12:20:00Z", None, "a4", "c2", {}, _ctx("/faq", country="GB"),
     "dt=2025-01-09/late-b.jsonl"),
]
ATTRIBUTION_NIGHT_B_ORDERS = [
    ("o7", "c1", "paid", "USD", 20.00, "2025-01-09 09:10:00", "2025-01-09 09:10:00"),
    # c4 has no sessions: only the order's own change brings it in
    ("o8", "c4", "paid", "EUR", 15.00, "2025-01-10 08:00:00", "2025-01-10 08:00:00"),
]


def append_attribution_night(path: str | Path, night: str) -> Path:
    """Night "A" or "B" of the attribution nights (after build_base). A: a late session of c2
    inside o2's lookback window, an anonymous device a7, a new order o6 of c2, o4 refunded
    (c1 has no new events that night). B: a7 is identified as c1, a late event extends o6's
    session past the order, o1 is cancelled, o2 moves to the reject quarantine (unknown
    currency), new orders o7 of c1 and o8 of c4 (no sessions)."""
    path = Path(path)
    con = duckdb.connect(str(path))
    try:
        if night == "A":
            _insert_events(con, ATTRIBUTION_NIGHT_A_EVENTS, LOAD_2)
            con.execute("update raw.orders set status = 'refunded', updated_at = cast('2025-01-09 18:00:00' as timestamp),"
                        " _dlt_load_id = 'load-2' where order_id = 'o4'")
            _insert_shop(con, "load-2", orders=ATTRIBUTION_NIGHT_A_ORDERS, items=[("o6", 1, "p2", 4, 10.00)])
        elif night == "B":
            _insert_events(con, ATTRIBUTION_NIGHT_B_EVENTS, LOAD_3)
            con.execute("update raw.orders set status = 'cancelled', updated_at = cast('2025-01-10 09:00:00' as timestamp),"
                        " _dlt_load_id = 'load-3' where order_id = 'o1'")
            con.execute("update raw.orders set currency = 'XXX', updated_at = cast('2025-01-10 09:00:00' as timestamp),"
                        " _dlt_load_id = 'load-3' where order_id = 'o2'")
            _insert_shop(con, "load-3", orders=ATTRIBUTION_NIGHT_B_ORDERS,
                         items=[("o7", 1, "p2", 2, 10.00), ("o8", 1, "p2", 1, 15.00)])
        else:
            raise ValueError(night)
    finally:
        con.close()
    return path


if __name__ == "__main__":  # pragma: no cover - handy for local development
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "data/warehouse.duckdb")
    target.parent.mkdir(parents=True, exist_ok=True)
    build_base(target)
    if "--append" in sys.argv:
        append_increment(target)
    print(f"wrote {target}")
