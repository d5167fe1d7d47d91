"""The shop's OLTP database (DESIGN.md §1.2) written with SQLAlchemy Core.

Rows are inserted when they happen and updated when they change (status transitions,
profile edits, price changes), so `updated_at` moves exactly like in a real shop and
incremental ingestion on `updated_at` sees the refunds of old orders.
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column, DateTime, Integer, MetaData, Numeric, PrimaryKeyConstraint, String, Table,
    bindparam, create_engine, event, insert, update,
)
from sqlalchemy.engine import Connection, Engine

metadata = MetaData()

customers = Table(
    "customers", metadata,
    Column("customer_id", String(32), primary_key=True),
    Column("email", String(255), nullable=False),
    Column("country", String(2), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
products = Table(
    "products", metadata,
    Column("product_id", String(32), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("category", String(64), nullable=False),
    Column("price", Numeric(12, 2), nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
orders = Table(
    "orders", metadata,
    Column("order_id", String(32), primary_key=True),
    Column("customer_id", String(32), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("total_amount", Numeric(12, 2), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False, index=True),
)
order_items = Table(
    "order_items", metadata,
    Column("order_id", String(32), nullable=False),
    Column("line_number", Integer, nullable=False),
    Column("product_id", String(32), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Numeric(12, 2), nullable=False),
    PrimaryKeyConstraint("order_id", "line_number"),
)


def money(x: float) -> Decimal:
    return Decimal(f"{x:.2f}")


def open_engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # Generation is restartable from scratch, so durability per commit is not needed;
        # fsync per day would dominate the run time of a small shop.
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA synchronous=OFF")
        cur.close()

    return engine


def create_schema(engine: Engine) -> None:
    metadata.create_all(engine)


class DayWriter:
    """Buffers one day's changes and flushes them in a single transaction."""

    def __init__(self) -> None:
        self.new_customers: list[dict] = []
        self.customer_updates: list[dict] = []
        self.new_orders: list[dict] = []
        self.new_items: list[dict] = []
        self.order_updates: list[dict] = []
        self.product_upserts: list[dict] = []
        self.product_updates: list[dict] = []

    def flush(self, conn: Connection) -> None:
        if self.product_upserts:
            conn.execute(insert(products), self.product_upserts)
        if self.product_updates:
            conn.execute(_change(products, "product_id", "pid", "price", "price"), self.product_updates)
        if self.new_customers:
            conn.execute(insert(customers), self.new_customers)
        if self.customer_updates:
            conn.execute(_change(customers, "customer_id", "cid", "email", "new_email"), self.customer_updates)
        if self.new_orders:
            conn.execute(insert(orders), self.new_orders)
            conn.execute(insert(order_items), self.new_items)
        if self.order_updates:
            conn.execute(_change(orders, "order_id", "oid", "status", "new_status"), self.order_updates)


def _change(table: Table, key: str, key_param: str, column: str, param: str):
    """UPDATE table SET column = :param, updated_at = :ts WHERE key = :key_param."""
    return (
        update(table).where(table.c[key] == bindparam(key_param))
        .values({column: bindparam(param), "updated_at": bindparam("ts")})
    )
