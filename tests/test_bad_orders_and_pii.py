"""Hostile shop rows and PII through a real night (SQLite shop, landing files, dlt, dbt
through Dagster): bad orders are quarantined with their reason and count in no metric, the
Dagster check on the quarantine warns with the count; e-mail-shaped ids (events and shop
alike) are pseudonymised consistently and URL query strings never reach the marts."""
from __future__ import annotations

import hashlib
import hmac
import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from corpus import ev, j
from nightjar.runner import run_pipeline
from nightjar.settings import get_settings
from querying import query
from shop_fixtures import T0, build_shop, customers, order_items, orders

pytestmark = pytest.mark.slow

DAY = T0 + timedelta(days=9)  # 2025-01-10: the shop's order o_00000009 (USD) is on this day
BAD = {  # order_id -> (customer_id, status, currency, total) and the reason expected
    "o_bad_fx": (("c_000001", "paid", "JPY", "100.00"), "unknown_currency"),
    "o_bad_neg": (("c_000002", "refunded", "USD", "-50.00"), "negative_amount"),
    "o_bad_cust": (("ghost", "paid", "USD", "30.00"), "unknown_customer"),
    "o_bad_status": (("c_000003", "lost_in_post", "USD", "40.00"), "unknown_status"),
}
IPV4 = r"(^|[^0-9.])([0-9]{1,3}\.){3}[0-9]{1,3}([^0-9.]|$)"


def _hmac(message: str) -> str:
    return hmac.new(os.environ["NIGHTJAR_PII_KEY"].encode(), message.encode(), hashlib.sha256).hexdigest()


def _shop(url: str) -> None:
    engine = sa.create_engine(url)
    build_shop(engine)
    at = DAY + timedelta(hours=5)
    with engine.begin() as con:
        con.execute(customers.insert(), [{"customer_id": "vip@example.com", "email": " VIP@Example.com",
                                          "country": "DE", "created_at": T0, "updated_at": T0}])
        rows = [{"order_id": "o_vip", "customer_id": "vip@example.com", "status": "paid", "currency": "USD",
                 "total_amount": Decimal("25.00"), "created_at": at, "updated_at": at}]
        rows += [{"order_id": oid, "customer_id": c, "status": s, "currency": cur, "total_amount": Decimal(t),
                  "created_at": at, "updated_at": at} for oid, ((c, s, cur, t), _) in BAD.items()]
        con.execute(orders.insert(), rows)
        con.execute(order_items.insert(), [{"order_id": r["order_id"], "line_number": 1, "product_id": "p_0001",
                                            "quantity": 2, "unit_price": Decimal("12.50")} for r in rows])


def _events(events_dir: Path) -> None:
    part = events_dir / f"dt={DAY:%Y-%m-%d}"
    part.mkdir(parents=True)
    t = lambda h: (DAY + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    vip_page = {"url": "https://shop.example/account?email=vip@example.com&ip=203.0.113.7#token=x@y",
                "path": "/account?email=vip@example.com", "title": "Hi vip@example.com",
                "referrer": "https://mail.example/inbox?from=vip@example.com&client=198.51.100.23#m@1"}
    events = [
        ev("v1", timestamp=t(10), received_at=t(10), user_id="vip@example.com", anonymous_id="vip-device",
           context={"page": vip_page, "user_agent": "Mozilla/5.0", "ip": "203.0.113.7"}),
        ev("v2", timestamp=t(10.01), received_at=t(10.01), user_id="vip@example.com", anonymous_id="vip-device",
           event_name="search_performed", properties={"query": "vip@example.com 10.0.0.1"}),
        ev("a1", timestamp=t(11), received_at=t(11), anonymous_id="anon@example.com",
           context={"page": {"url": "https://shop.example/?utm_source=ads&utm_campaign=winter&e=a@b.c",
                             "path": "/"}, "user_agent": "Mozilla/5.0", "ip": "192.0.2.1"}),
        ev("c1", timestamp=t(12), received_at=t(12), user_id="c_000001", anonymous_id="dev-c1"),
    ]
    (part / "batch.jsonl").write_text("".join(j(e) + "\n" for e in events))


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("hostile_shop") / "data"
    data_dir.mkdir()
    saved = {k: os.environ.get(k) for k in ("NIGHTJAR_DATA_DIR", "NIGHTJAR_WAREHOUSE", "NIGHTJAR_SHOP_DB_URL")}
    os.environ["NIGHTJAR_DATA_DIR"] = str(data_dir)
    for k in ("NIGHTJAR_WAREHOUSE", "NIGHTJAR_SHOP_DB_URL"):
        os.environ.pop(k, None)
    try:
        settings = get_settings()
        _shop(settings.shop_db_url)
        _events(settings.events_dir)
        result = run_pipeline("group:ingestion or group:staging or group:marts", print_summary=False)
        yield settings, result
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def test_bad_orders_are_quarantined_with_their_reason(night):
    settings, result = night
    assert result.success
    rows = query(settings.warehouse, "select order_id, reason from staging.stg_orders_rejected order by 1")
    assert rows == sorted((oid, reason) for oid, (_, reason) in BAD.items())
    bad = tuple(BAD)
    assert query(settings.warehouse, f"select count(*) from staging.stg_orders where order_id in {bad}") == [(0,)]
    assert query(settings.warehouse, f"select count(*) from staging.stg_order_items where order_id in {bad}") == [(0,)]


def test_the_days_orders_revenue_and_aov_ignore_bad_orders(night):
    settings, _ = night
    engine = sa.create_engine(settings.shop_db_url)
    with engine.connect() as con:  # the good orders of the day: the shop's own (USD) and the vip's
        good = con.execute(sa.text(
            "select count(*), sum(total_amount) from orders where date(created_at) = :d and order_id not like 'o_bad%'"),
            {"d": f"{DAY:%Y-%m-%d}"}).one()
        units = con.execute(sa.text(
            "select sum(quantity) from order_items i join orders o using (order_id) "
            "where date(o.created_at) = :d and o.order_id not like 'o_bad%'"), {"d": f"{DAY:%Y-%m-%d}"}).scalar()
    assert good[0] == 2
    (orders_, gross, aov, units_), = query(settings.warehouse, "select orders, gross_revenue, aov, units "
                                          "from marts.fct_daily_metrics where metric_date = ?", [DAY.date()])
    assert (orders_, units_) == (2, units)
    assert gross == pytest.approx(float(good[1])) and aov == pytest.approx(float(good[1]) / 2)


def test_the_quarantine_check_warns_with_the_count(night):
    _, result = night
    evaluations = [e for e in result.get_asset_check_evaluations()
                   if e.asset_key.path[-1] == "stg_orders_rejected" and "has_no_rows" in e.check_name]
    assert len(evaluations) == 1
    check = evaluations[0]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["dagster_dbt/failed_row_count"].value == len(BAD)


def test_no_email_or_ip_reaches_the_marts_and_pseudonyms_still_join(night):
    settings, _ = night
    wh = settings.warehouse
    leaks = []
    for schema, table, column in query(wh, "select table_schema, table_name, column_name from "
                                          "information_schema.columns where table_schema = 'marts'"):
        n = query(wh, f'select count(*) from {schema}.{table} where cast("{column}" as varchar) like \'%@%\' '
                      f'or regexp_matches(cast("{column}" as varchar), \'{IPV4}\')')[0][0]
        if n:
            leaks.append((table, column, n))
    assert leaks == []
    # the same pseudonym in events (user_id) and in the shop (customer_id): sessions, orders
    # and the customer dimension still join
    vip = _hmac("vip@example.com")
    assert query(wh, "select user_key, customer_id, landing_page, referrer from marts.fct_sessions "
                     "where customer_id = ?", [vip]) == [(vip, vip, "/account", "https://mail.example/inbox")]
    assert query(wh, "select orders_count, email_hash from marts.dim_customers where customer_id = ?",
                 [vip]) == [(1, _hmac("vip@example.com"))]
    # an e-mail as anonymous_id is pseudonymised too; UTM values come from the URL before stripping
    assert query(wh, "select utm_source, utm_campaign, landing_page from marts.fct_sessions where user_key = ?",
                 [_hmac("anon@example.com")]) == [("ads", "winter", "/")]
    assert query(wh, "select count(*) from staging.stg_events where user_id like '%@%' or anonymous_id like '%@%' "
                     "or page_url like '%?%' or referrer like '%?%'") == [(0,)]
