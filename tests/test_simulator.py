"""Tests of the synthetic shop (`nightjar simulate`) on small, real output directories.

The checks read what the simulator wrote (landing files, SQLite, ground truth) with an
independent reader and validator, so a test passes only if the files themselves have the
promised properties.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nightjar.simulator import SimConfig, append_days, simulate

START = date(2024, 3, 4)  # a Monday
BOT_RE = re.compile(r"bot|crawler|spider|headlesschrome|curl|wget|python-requests", re.I)
ISO_OFFSET_RE = re.compile(r"(Z|[+-]\d{2}:\d{2})$")
DIRTY = SimConfig(malformed_rate=0.01, duplicate_rate=0.03, late_file_rate=0.3, nonnormal_name_rate=0.01,
                  plain_file_rate=0.05, refund_rate=0.2, cancel_rate=0.1)


# ----------------------------------------------------------------------------------- reading
def _parse_ts(s: object) -> datetime | None:
    if not isinstance(s, str) or not s or not ISO_OFFSET_RE.search(s):
        return None
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None


def classify(raw: bytes) -> tuple[str | None, dict | None]:
    """(rejection reason or None, parsed object) following DESIGN.md §1.1 — independent of the
    ingestion code, so that simulator and loader are checked against the contract, not each other."""
    if len(raw) > 32 * 1024:
        return "line_too_large", None
    try:
        obj = json.loads(raw)
    except ValueError:
        return "invalid_json", None
    if not isinstance(obj, dict):
        return "not_an_object", None
    for key in ("event_id", "event_name", "anonymous_id"):
        v = obj.get(key)
        if not isinstance(v, str) or not v.strip():
            return f"missing_{key}", None
    ts = obj.get("timestamp")
    if ts in (None, ""):
        return "missing_timestamp", None
    if not isinstance(ts, str):
        return "unparsable_timestamp", None
    try:
        datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return "unparsable_timestamp", None
    parsed = _parse_ts(ts)
    if parsed is None:
        return "timestamp_without_offset", None
    received = _parse_ts(obj.get("received_at")) or parsed
    if parsed < datetime(2000, 1, 1, tzinfo=timezone.utc):
        return "timestamp_too_early", None
    if parsed > received + timedelta(days=1):
        return "timestamp_after_received_at", None
    if obj.get("properties") is not None and not isinstance(obj["properties"], dict):
        return "properties_not_object", None
    if obj.get("context") is not None and not isinstance(obj["context"], dict):
        return "context_not_object", None
    if obj.get("user_id") is not None and not isinstance(obj["user_id"], str):
        return "user_id_not_string", None
    obj["_ts"], obj["_recv"] = parsed, received
    return None, obj


@dataclass
class Shop:
    out: Path
    truth: dict
    lines: int = 0
    events: list[dict] = field(default_factory=list)  # valid, de-duplicated, in file order
    rejected: Counter = field(default_factory=Counter)
    duplicates: int = 0
    files: dict[str, list[str]] = field(default_factory=dict)  # dt -> file names

    @cached_property
    def human(self) -> list[dict]:
        return [e for e in self.events if not BOT_RE.search(e["context"]["user_agent"])]

    def db(self, sql: str) -> list[tuple]:
        con = sqlite3.connect(self.out / "shop.sqlite")
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()


def landing_files(out: Path, include_pending: bool = True) -> list[Path]:
    files = sorted((out / "landing" / "events").glob("dt=*/*.jsonl*"))
    if include_pending:
        files += sorted((out / ".simulator_state" / "pending").glob("*/dt=*/*.jsonl*"))
    return files


def read_shop(out: Path) -> Shop:
    shop = Shop(out, json.loads((out / "ground_truth.json").read_text()))
    seen: set[str] = set()
    for f in landing_files(out):
        data = f.read_bytes()
        if f.suffix == ".gz":
            data = gzip.decompress(data)
        shop.files.setdefault(f.parent.name, []).append(f.name)
        for raw in data.split(b"\n")[:-1]:
            shop.lines += 1
            reason, obj = classify(raw)
            if reason:
                shop.rejected[reason] += 1
            elif obj["event_id"] in seen:
                shop.duplicates += 1
            else:
                seen.add(obj["event_id"])
                shop.events.append(obj)
    return shop


def digest(out: Path) -> str:
    """Hash of every landing byte, the ground truth and the ordered content of every table."""
    h = hashlib.sha256()
    for f in landing_files(out):
        h.update(str(f.relative_to(out)).encode())
        h.update(f.read_bytes())
    h.update((out / "ground_truth.json").read_bytes())
    con = sqlite3.connect(out / "shop.sqlite")
    for table, key in (("customers", "customer_id"), ("products", "product_id"), ("orders", "order_id"),
                       ("order_items", "order_id, line_number")):
        for row in con.execute(f"SELECT * FROM {table} ORDER BY {key}"):
            h.update(repr(row).encode())
    con.close()
    return h.hexdigest()


def norm_name(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


# ----------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def shop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shop")
    summary = simulate(out, start=START, days=91, customers=300, seed=7)
    assert summary["days"] == 91 and summary["events"] > 10_000
    return out


@pytest.fixture(scope="module")
def shop(shop_dir: Path) -> Shop:
    return read_shop(shop_dir)


@pytest.fixture(scope="module")
def dirty_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dirty")
    simulate(out, start=START, days=45, customers=150, seed=3, config=DIRTY)
    return out


@pytest.fixture(scope="module")
def dirty(dirty_dir: Path) -> Shop:
    return read_shop(dirty_dir)


# ----------------------------------------------------------------------------------- determinism
def test_same_seed_is_byte_identical_and_other_seed_differs(tmp_path: Path, shop_dir: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 5), (b, 5), (c, 6)):
        simulate(out, start=START, days=14, customers=80, seed=seed, config=DIRTY)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)
    # and a second simulate into the same directory replaces, not adds to, the first
    simulate(a, start=START, days=14, customers=80, seed=5, config=DIRTY)
    assert digest(a) == digest(b)


def test_gzip_files_have_no_timestamp(shop_dir: Path) -> None:
    gz = [f for f in landing_files(shop_dir) if f.suffix == ".gz"]
    assert gz
    for f in gz[:20]:
        header = f.read_bytes()[:10]
        assert header[:2] == b"\x1f\x8b" and header[4:8] == b"\0\0\0\0"  # MTIME = 0


# ----------------------------------------------------------------------------------- layout and schema
def test_layout_ids_and_schema(shop: Shop) -> None:
    dts = sorted(shop.files)
    assert dts[0] == f"dt={START.isoformat()}" and dts[-1] == f"dt={START + timedelta(days=90)}"
    assert len(dts) == 91
    lost = f"dt={shop.truth['incidents']['tracking_outage']['date']}"
    for dt_folder, names in shop.files.items():
        # several batches per day; the tracking outage delivers nothing after 04:00 UTC
        assert len(names) >= (1 if dt_folder == lost else 3)
        assert all(re.fullmatch(r"batch-\d{8}T\d{4}Z-\d{2}\.jsonl(\.gz)?", n) for n in names)
    assert all(re.fullmatch(r"c_\d{6}", r[0]) for r in shop.db("SELECT customer_id FROM customers"))
    assert all(re.fullmatch(r"p_\d{4}", r[0]) for r in shop.db("SELECT product_id FROM products"))
    assert all(re.fullmatch(r"o_\d{8}", r[0]) for r in shop.db("SELECT order_id FROM orders"))
    assert 150 <= shop.db("SELECT count(*) FROM products")[0][0] <= 250

    from sqlalchemy import DateTime, Numeric, create_engine, inspect

    insp = inspect(create_engine(f"sqlite:///{shop.out / 'shop.sqlite'}"))
    assert insp.get_pk_constraint("order_items")["constrained_columns"] == ["order_id", "line_number"]
    assert insp.get_pk_constraint("orders")["constrained_columns"] == ["order_id"]
    cols = {c["name"]: c["type"] for c in insp.get_columns("orders")}
    assert isinstance(cols["total_amount"], Numeric) and cols["total_amount"].scale == 2
    assert isinstance(cols["updated_at"], DateTime)
    statuses = {r[0] for r in shop.db("SELECT DISTINCT status FROM orders")}
    assert statuses <= {"placed", "paid", "shipped", "delivered", "cancelled", "refunded"}
    assert {"delivered", "cancelled", "refunded"} <= statuses
    currencies = dict(shop.db("SELECT currency, count(*) FROM orders GROUP BY 1"))
    assert set(currencies) == {"USD", "EUR", "GBP"} and currencies["USD"] > sum(currencies.values()) / 2


def test_event_shape(shop: Shop) -> None:
    names = Counter(norm_name(e["event_name"]) for e in shop.events)
    assert set(names) == {"page_viewed", "product_viewed", "product_added_to_cart", "checkout_started",
                          "purchase_completed", "user_signed_up", "user_identified", "search_performed"}
    for e in shop.events[:3000]:
        ctx = e["context"]
        assert set(ctx) >= {"page", "campaign", "user_agent", "locale", "timezone", "screen", "geo"}
        assert set(ctx["page"]) == {"url", "path", "referrer", "title"}
        assert set(ctx["campaign"]) == {"source", "medium", "name"}
        assert e["user_id"] is None or re.fullmatch(r"c_\d{6}", e["user_id"])
        props, name = e["properties"], norm_name(e["event_name"])
        required = {"product_viewed": {"product_id", "category", "price"}, "product_added_to_cart":
                    {"product_id", "quantity", "price"}, "checkout_started": {"cart_value"},
                    "purchase_completed": {"order_id", "revenue", "currency"}, "user_signed_up": {"method"},
                    "search_performed": {"query"}}.get(name, set())
        assert required <= set(props)
    mediums = Counter(e["context"]["campaign"]["medium"] for e in shop.human)
    assert {"organic", "cpc", "social", "email", "referral", None} <= set(mediums)


def test_purchases_match_orders(shop: Shop) -> None:
    orders = {r[0]: r for r in shop.db("SELECT order_id, customer_id, currency, total_amount, created_at FROM orders")}
    purchases = [e for e in shop.events if norm_name(e["event_name"]) == "purchase_completed"]
    # every order has its event (late files included), except those of the tracking outage
    outage = shop.truth["incidents"]["tracking_outage"]
    lost = set(outage["lost_order_ids"])
    assert lost and {orders[o][4][:10] for o in lost} == {outage["date"]}
    assert not lost & {e["properties"]["order_id"] for e in purchases}
    assert len(purchases) == len(orders) - len(lost) > 100
    items = dict(shop.db("SELECT order_id, round(sum(quantity * unit_price), 2) FROM order_items GROUP BY 1"))
    for e in purchases:
        oid, cid, cur, total, created = orders[e["properties"]["order_id"]]
        assert e["user_id"] == cid and e["properties"]["currency"] == cur
        assert e["properties"]["revenue"] == pytest.approx(total, abs=0.005)
        assert items[oid] == pytest.approx(total, abs=0.011)
        assert abs(datetime.fromisoformat(created).replace(tzinfo=timezone.utc) - e["_recv"]) < timedelta(seconds=5)


# ----------------------------------------------------------------------------------- realism
def _daily(events: list[dict]) -> Counter:
    return Counter(e["_ts"].astimezone(timezone.utc).date() for e in events)


def _weekend_ratio(events: list[dict], start: date, days: int) -> float:
    per_day = _daily(events)
    days_ = [start + timedelta(days=i) for i in range(days)]
    we = [per_day[d] for d in days_ if d.weekday() >= 5]
    wd = [per_day[d] for d in days_ if d.weekday() < 5]
    return (sum(we) / len(we)) / (sum(wd) / len(wd))


def test_weekly_seasonality_follows_config(shop: Shop, tmp_path: Path) -> None:
    assert _weekend_ratio(shop.human, START, 91) > 1.1  # default profile: busier weekends
    inverted = SimConfig(weekly_profile=(1.2, 1.2, 1.2, 1.2, 1.2, 0.6, 0.6))
    simulate(tmp_path, start=START, days=42, customers=100, seed=7, config=inverted)
    assert _weekend_ratio(read_shop(tmp_path).human, START, 42) < 0.75


def test_funnel_step_rates_match_config(shop: Shop) -> None:
    cfg = SimConfig()
    outage = date.fromisoformat(shop.truth["incidents"]["checkout_outage"]["date"])
    sessions: dict[str, set[str]] = defaultdict(set)
    for e in shop.human:
        if e["_ts"].astimezone(timezone.utc).date() == outage:
            continue
        name = norm_name(e["event_name"])
        sessions[e["session_id"]].add(name)
        if name == "checkout_started" and e["user_id"]:
            sessions[e["session_id"]].add("checkout_identified")
    n = len(sessions)
    prod = sum("product_viewed" in s for s in sessions.values())
    cart = sum("product_added_to_cart" in s for s in sessions.values())
    chk = sum("checkout_started" in s for s in sessions.values())
    chk_id = [s for s in sessions.values() if "checkout_identified" in s]
    bought = sum("purchase_completed" in s for s in chk_id)
    assert n > 5000
    assert prod / n == pytest.approx(cfg.p_product_view, abs=0.03)
    assert cart / prod == pytest.approx(cfg.p_add_to_cart, abs=0.03)
    assert chk / cart == pytest.approx(cfg.p_checkout, abs=0.05)
    assert bought / len(chk_id) == pytest.approx(cfg.p_purchase, abs=0.07)
    # anonymous visitors cannot buy: every purchase comes from an identified session
    assert all("checkout_identified" in s for s in sessions.values() if "purchase_completed" in s)


def test_sessions_cross_midnight_and_identity_is_stitchable(shop: Shop) -> None:
    days_by_session: dict[str, set] = defaultdict(set)
    first_anon: dict[str, datetime] = {}
    first_user: dict[str, datetime] = {}
    for e in shop.human:
        days_by_session[e["session_id"]].add(e["_ts"].astimezone(timezone.utc).date())
        target = first_user if e["user_id"] else first_anon
        a = e["anonymous_id"]
        target[a] = min(target.get(a, e["_ts"]), e["_ts"])
    assert sum(len(d) > 1 for d in days_by_session.values()) >= 5
    # devices that browsed anonymously on an earlier day before the visitor identified
    earlier = [a for a in first_user if a in first_anon and first_anon[a] < first_user[a] - timedelta(days=1)]
    assert len(earlier) >= 10
    signups = [e for e in shop.events if norm_name(e["event_name"]) == "user_signed_up"]
    lost_signups = shop.truth["incidents"]["tracking_outage"]["lost_signups"]  # the shop has them, the events not
    assert len(signups) == shop.db("SELECT count(*) FROM customers WHERE created_at >= ?".replace("?", f"'{START}'"))[0][0] - lost_signups


def test_non_utc_offsets_denote_the_right_instant(shop: Shop) -> None:
    local = [e for e in shop.human if not e["timestamp"].endswith("Z")]
    assert 0.05 < len(local) / len(shop.human) < 0.3
    offsets = Counter(e["timestamp"][-6:] for e in local)
    assert any(o.startswith("+") for o in offsets) and any(o.startswith("-") for o in offsets)
    close = 0
    for e in local:
        zone = ZoneInfo(e["context"]["timezone"])
        ts = e["_ts"]
        noon = datetime.combine(ts.astimezone(timezone.utc).date(), datetime.min.time()).replace(hour=12)
        assert ts.utcoffset() in (zone.utcoffset(ts.replace(tzinfo=None)), zone.utcoffset(noon))
        close += abs(ts - e["_recv"]) < timedelta(seconds=10)
    # the offset is a rendering of the same instant: it matches the server's UTC receive time
    assert close / len(local) > 0.97


def test_orders_lifecycle_moves_updated_at(shop: Shop) -> None:
    rows = shop.db("SELECT status, created_at, updated_at FROM orders")
    moved = [r for r in rows if r[2] > r[1]]
    assert len(moved) / len(rows) > 0.8
    refunded = [r for r in rows if r[0] == "refunded"]
    assert refunded and all((datetime.fromisoformat(r[2]) - datetime.fromisoformat(r[1])).days >= 3 for r in refunded)


# ----------------------------------------------------------------------------------- ground truth
def test_ground_truth_incidents_are_visible(shop: Shop) -> None:
    inc = shop.truth["incidents"]
    assert set(inc) >= {"checkout_outage", "bot_spike", "marketing_spike", "tracking_outage"}
    period = {START + timedelta(days=i) for i in range(91)}
    days = {k: date.fromisoformat(v["date"]) for k, v in inc.items()}
    assert set(days.values()) <= period and len(set(days.values())) == len(days) == 4
    human_by_day = _daily(shop.human)
    purchases = _daily([e for e in shop.human if norm_name(e["event_name"]) == "purchase_completed"])
    sessions = Counter()
    for sid, d in {(e["session_id"], e["_ts"].astimezone(timezone.utc).date()) for e in shop.human}:
        sessions[d] += 1

    def median(c: Counter) -> float:
        vals = sorted(c[d] for d in period)
        return vals[len(vals) // 2]

    out = days["checkout_outage"]
    assert purchases[out] <= 0.25 * median(purchases)
    assert sessions[out] >= 0.6 * median(sessions)
    bots = _daily([e for e in shop.events if BOT_RE.search(e["context"]["user_agent"])])
    assert bots[days["bot_spike"]] > 4 * median(bots)
    name = inc["marketing_spike"]["utm_campaign"]
    camp_days = Counter(e["_ts"].astimezone(timezone.utc).date() for e in shop.human
                        if e["context"]["campaign"]["name"] == name)
    assert camp_days[days["marketing_spike"]] > 0.3 * human_by_day[days["marketing_spike"]]
    assert set(camp_days) <= {days["marketing_spike"], days["marketing_spike"] + timedelta(days=1)}
    # tracking outage: events stop early in the day, orders in the shop do not
    lost = days["tracking_outage"]
    assert human_by_day[lost] <= 0.35 * median(human_by_day)
    orders = Counter(date.fromisoformat(r[0][:10]) for r in shop.db("SELECT created_at FROM orders"))
    assert orders[lost] >= 0.5 * median(orders)


def test_ground_truth_churn_is_consistent_with_behaviour(shop: Shop) -> None:
    truth = shop.truth["customers"]
    ids = {r[0] for r in shop.db("SELECT customer_id FROM customers")}
    assert set(truth) == ids
    assert truth[min(ids)].keys() >= {"churned", "churn_date", "engagement", "engagement_level"}
    churned = {c: date.fromisoformat(v["churn_date"]) for c, v in truth.items() if v["churned"]}
    assert 0.1 < len(churned) / len(truth) < 0.8
    last_seen: dict[str, date] = {}
    sessions: Counter = Counter()
    for e in shop.human:
        if e["user_id"]:
            d = e["_ts"].astimezone(timezone.utc).date()
            last_seen[e["user_id"]] = max(last_seen.get(e["user_id"], d), d)
            sessions[e["user_id"], e["session_id"]] = 1
    # churned customers stop visiting (sessions may run past midnight into the churn day)
    assert all(last_seen.get(c, date.min) <= d for c, d in churned.items())
    per_cust = Counter(c for c, _s in sessions)
    levels: dict[str, list[int]] = defaultdict(list)
    for c, v in truth.items():
        if not v["churned"] and v["created_at"] < START.isoformat():
            levels[v["engagement_level"]].append(per_cust[c])
    mean = {k: sum(v) / len(v) for k, v in levels.items()}
    assert mean["high"] > 1.5 * mean["low"]  # engaged customers visit more


# ----------------------------------------------------------------------------------- dirt
def test_dirt_rates_are_within_bands(shop: Shop) -> None:
    cfg, dirt = SimConfig(), shop.truth["dirt"]
    bots = sum(1 for e in shop.events if BOT_RE.search(e["context"]["user_agent"]))
    assert bots / len(shop.events) == pytest.approx(cfg.bot_rate, abs=0.012)  # +bot-spike day
    assert shop.duplicates == dirt["duplicates"]
    assert shop.duplicates / len(shop.events) == pytest.approx(cfg.duplicate_rate, rel=0.3)
    assert sum(shop.rejected.values()) == sum(dirt["malformed"].values())
    assert sum(shop.rejected.values()) / shop.lines == pytest.approx(cfg.malformed_rate, rel=0.5)
    n_files = sum(len(v) for v in shop.files.values())
    assert dirt["late_files"] / n_files < 0.06


def test_every_malformed_kind_present_and_reconciles(dirty: Shop) -> None:
    expected = {"invalid_json", "not_an_object", "missing_event_id", "missing_event_name", "missing_anonymous_id",
                "missing_timestamp", "unparsable_timestamp", "timestamp_without_offset", "timestamp_too_early",
                "timestamp_after_received_at", "properties_not_object", "context_not_object",
                "user_id_not_string", "line_too_large"}
    assert set(dirty.rejected) == expected
    assert dict(dirty.rejected) == dirty.truth["dirt"]["malformed"]  # counts reconcile exactly
    total = sum(dirty.rejected.values())
    assert total / dirty.lines == pytest.approx(0.01, rel=0.3)
    assert dirty.duplicates / len(dirty.events) == pytest.approx(0.03, rel=0.25)
    variants = Counter(e["event_name"] for e in dirty.events if e["event_name"] != norm_name(e["event_name"]))
    assert len(variants) >= 3 and sum(variants.values()) == dirty.truth["dirt"]["nonnormal_event_names"]
    assert any(n.endswith(".jsonl") for names in dirty.files.values() for n in names)


def test_duplicates_repeat_event_with_later_receive_time(dirty: Shop) -> None:
    by_id: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for f in landing_files(dirty.out):
        data = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
        for raw in data.split(b"\n")[:-1]:
            reason, obj = classify(raw)
            if not reason:
                by_id[obj["event_id"]].append((obj["received_at"], f.name))
    dups = [v for v in by_id.values() if len(v) > 1]
    assert len(dups) == dirty.duplicates
    assert all(len({r for r, _f in v}) == len(v) for v in dups)  # a retry has its own received_at
    assert any(len({f for _r, f in v}) > 1 for v in dups)  # some land in a later file


def test_lines_out_of_order_within_files(shop_dir: Path) -> None:
    f = max(landing_files(shop_dir, include_pending=False), key=lambda p: p.stat().st_size)
    data = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
    recv = [json.loads(x)["received_at"] for x in data.split(b"\n")[:-1] if classify(x)[0] is None]
    inversions = sum(a > b for a, b in zip(recv, recv[1:]))
    assert 0 < inversions < 0.2 * len(recv)


def test_late_files_land_in_past_partitions(dirty: Shop) -> None:
    late = dirty.truth["dirt"]["late_file_list"]
    n_files = sum(len(v) for v in dirty.files.values())
    assert 0.2 < len(late) / n_files < 0.4
    for item in late:
        dt, name = item["file"].split("/")
        stamp = datetime.strptime(name.split("-")[1], "%Y%m%dT%H%MZ").date()
        lag = (stamp - date.fromisoformat(dt[3:])).days
        assert 1 <= lag <= 4 and date.fromisoformat(item["lands_on"]) <= stamp
        assert name in dirty.files[dt]


# ----------------------------------------------------------------------------------- append
def test_append_days_continues_the_world(dirty_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "shop"
    shutil.copytree(dirty_dir, out)
    before_files = {str(f.relative_to(out)): f.read_bytes() for f in landing_files(out, include_pending=False)}
    before_truth = json.loads((out / "ground_truth.json").read_text())
    pending = before_truth["dirt"]["late_files_pending"]
    old_end = date.fromisoformat(before_truth["config"]["end"])
    con = sqlite3.connect(out / "shop.sqlite")
    old_orders = dict(con.execute("SELECT order_id, status FROM orders"))
    old_customers = [r[0] for r in con.execute("SELECT customer_id FROM customers ORDER BY 1")]
    con.close()
    assert pending, "the dirty shop should end with late files still in flight"

    summary = append_days(out, 10)
    assert summary["days"] == 10 and summary["start"] == (old_end + timedelta(days=1)).isoformat()

    after = {str(f.relative_to(out)): f for f in landing_files(out, include_pending=False)}
    for name, data in before_files.items():  # files never change once written
        assert after[name].read_bytes() == data
    new = set(after) - set(before_files)
    new_dts = {n.split("/")[2] for n in new}
    expected = {f"dt={old_end + timedelta(days=i)}" for i in range(1, 11)}
    assert expected <= new_dts
    # late files for days already written appear in their old partitions
    assert all(f"landing/events/{p}" in after for p in pending)
    assert any(date.fromisoformat(d[3:]) <= old_end for d in new_dts)

    con = sqlite3.connect(out / "shop.sqlite")
    orders = con.execute("SELECT order_id, status, created_at, updated_at FROM orders").fetchall()
    customers = [r[0] for r in con.execute("SELECT customer_id FROM customers ORDER BY 1")]
    con.close()
    ids = [o[0] for o in orders]
    assert len(ids) == len(set(ids)) > len(old_orders)
    assert min(set(ids) - set(old_orders)) > max(old_orders)
    new_c = [c for c in customers if c not in set(old_customers)]
    assert new_c and int(new_c[0][2:]) == int(old_customers[-1][2:]) + 1
    boundary = (old_end + timedelta(days=1)).isoformat()
    changed = [o for o in orders if o[0] in old_orders and o[1] != old_orders[o[0]]]
    assert changed and all(o[3] >= boundary for o in changed)
    assert any(o[1] in ("refunded", "cancelled") for o in changed)

    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["config"]["end"] == (old_end + timedelta(days=10)).isoformat()
    assert set(truth["customers"]) == set(customers)
    assert len(truth["runs"]) == 2
    # purchases of the new days still match orders
    shop = read_shop(out)
    purchases = {e["properties"]["order_id"] for e in shop.events if norm_name(e["event_name"]) == "purchase_completed"}
    lost = set(truth["incidents"].get("tracking_outage", {}).get("lost_order_ids", []))
    assert purchases == set(ids) - lost
    assert dict(shop.rejected) == truth["dirt"]["malformed"]


def test_append_is_deterministic(dirty_dir: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(dirty_dir, a)
    shutil.copytree(dirty_dir, b)
    append_days(a, 3)
    append_days(b, 3)
    assert digest(a) == digest(b)


def test_append_without_a_world_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="simulate"):
        append_days(tmp_path, 1)


def test_tiny_shop_and_default_start(tmp_path: Path) -> None:
    summary = simulate(tmp_path, days=2, customers=20, seed=1)  # start=None: ends yesterday (UTC)
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    assert summary["end"] == yesterday.isoformat() and summary["start"] == (yesterday - timedelta(days=1)).isoformat()
    truth = json.loads((tmp_path / "ground_truth.json").read_text())
    assert {v["date"] for v in truth["incidents"].values()} <= {summary["start"], summary["end"]}
    assert summary["customers"] == len(truth["customers"]) >= 5
