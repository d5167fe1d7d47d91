"""Shop ingestion (nightjar.ingest.load_shop): incremental merge, refunds, SQLite vs PostgreSQL."""
from __future__ import annotations

import os
import shutil
import socket
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from nightjar.ingest import load_shop
from nightjar.settings import get_settings
from querying import query
from shop_fixtures import T0, add_orders, build_shop, orders

PG_BASE = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
TABLES = ["customers", "products", "orders", "order_items"]


def _settings(tmp_path, url=None, name="data"):
    env = {"NIGHTJAR_DATA_DIR": str(tmp_path / name)}
    if url:
        env["NIGHTJAR_SHOP_DB_URL"] = url
    return get_settings(env)


def _sqlite_shop(tmp_path, name="data"):
    settings = _settings(tmp_path, name=name)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(settings.shop_db_url)
    build_shop(engine)
    return settings, engine



def _table(settings, table, order):
    cols = [c for (c,) in query(settings.warehouse, "SELECT column_name FROM information_schema.columns WHERE table_schema='raw' "
                                        f"AND table_name='{table}' AND column_name NOT LIKE '_dlt%' ORDER BY ordinal_position")]
    return cols, query(settings.warehouse, f"SELECT {', '.join(cols)} FROM raw.{table} ORDER BY {order}")


def test_initial_load_rerun_and_refund_of_old_order(tmp_path):
    settings, engine = _sqlite_shop(tmp_path)
    first = load_shop(settings)
    assert first["rows"] == {"customers": 20, "products": 8, "orders": 60, "order_items": 120}
    for t, n in first["rows"].items():
        assert query(settings.warehouse, f"SELECT count(*) FROM raw.{t}")[0][0] == n
    cols = dict(query(settings.warehouse, "SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_schema='raw' AND table_name='orders'"))
    assert cols["total_amount"] == "DECIMAL(12,2)" and "_dlt_load_id" in cols

    again = load_shop(settings)
    assert again["rows"] == {t: 0 for t in TABLES} and again["rows_total"] == 0

    # a refund of a months-old order + a brand-new order with its items
    now = T0 + timedelta(days=120)
    with engine.begin() as con:
        con.execute(orders.update().where(orders.c.order_id == "o_00000003")
                    .values(status="refunded", updated_at=now))
        add_orders(con, [1000])
        con.execute(orders.update().where(orders.c.order_id == "o_00001000").values(updated_at=now))
    third = load_shop(settings)
    assert third["rows"]["orders"] == 2
    assert third["rows"]["order_items"] == 1 + 2  # items of order 3 (1 line) and order 1000 (2 lines)
    assert third["rows"]["customers"] == 0
    assert query(settings.warehouse, "SELECT count(*), count(DISTINCT order_id) FROM raw.orders")[0] == (61, 61)
    assert query(settings.warehouse, "SELECT status FROM raw.orders WHERE order_id = 'o_00000003'") == [("refunded",)]
    assert query(settings.warehouse, "SELECT count(*) FROM raw.order_items")[0][0] == 122  # 120 + 2 new; order 3 merged in place
    assert query(settings.warehouse, "SELECT count(*) FROM (SELECT order_id, line_number FROM raw.order_items "
                        "GROUP BY ALL HAVING count(*) > 1)")[0][0] == 0

    # losing the local dlt working dir must not reload anything
    shutil.rmtree(settings.dlt_pipelines_dir)
    assert load_shop(settings)["rows_total"] == 0


def test_rows_written_in_the_same_second_as_the_cursor_are_not_missed(tmp_path):
    settings, engine = _sqlite_shop(tmp_path)
    load_shop(settings)
    last = max(r[0] for r in query(settings.warehouse, "SELECT updated_at FROM raw.orders"))
    with engine.begin() as con:  # a late writer commits a row with exactly the last cursor value
        add_orders(con, [2000])
        con.execute(orders.update().where(orders.c.order_id == "o_00002000")
                    .values(updated_at=last.replace(tzinfo=None)))
    s = load_shop(settings)
    assert s["rows"]["orders"] == 1 and s["rows"]["order_items"] == 3


def _pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture()
def pg_schema():
    if not _pg_reachable():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is unreachable (CI=true: required)")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable")
    schema = f"nj_ingest_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_BASE)
    with admin.begin() as con:
        con.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        with admin.begin() as con:
            con.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.postgres
def test_postgres_source_loads_the_same_rows_as_sqlite(tmp_path, pg_schema):
    lite, _ = _sqlite_shop(tmp_path, name="lite")
    url = f"{PG_BASE}?options=-csearch_path%3D{pg_schema}"
    pg_engine = sa.create_engine(url)
    build_shop(pg_engine)
    pg = _settings(tmp_path, url=url, name="pg")
    try:
        s_lite, s_pg = load_shop(lite), load_shop(pg)
        assert s_lite["rows"] == s_pg["rows"]
        for table, order in [("customers", "customer_id"), ("products", "product_id"), ("orders", "order_id"),
                             ("order_items", "order_id, line_number")]:
            assert _table(lite, table, order) == _table(pg, table, order), table
        with pg_engine.begin() as con:
            con.execute(orders.update().where(orders.c.order_id == "o_00000005")
                        .values(status="refunded", updated_at=T0 + timedelta(days=200)))
        assert load_shop(pg)["rows"]["orders"] == 1
        assert query(pg.warehouse, "SELECT status FROM raw.orders WHERE order_id = 'o_00000005'") == [("refunded",)]
        assert load_shop(pg)["rows_total"] == 0
    finally:
        pg_engine.dispose()
