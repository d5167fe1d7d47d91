"""Hand-built shop databases (SQLAlchemy Core, schema per docs/ARCHITECTURE.md) for ingestion tests."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

metadata = sa.MetaData()
customers = sa.Table(
    "customers", metadata,
    sa.Column("customer_id", sa.String(16), primary_key=True),
    sa.Column("email", sa.String(200), nullable=False),
    sa.Column("country", sa.String(2)),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
products = sa.Table(
    "products", metadata,
    sa.Column("product_id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("category", sa.String(50)),
    sa.Column("price", sa.Numeric(12, 2), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
orders = sa.Table(
    "orders", metadata,
    sa.Column("order_id", sa.String(16), primary_key=True),
    sa.Column("customer_id", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("total_amount", sa.Numeric(12, 2), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
order_items = sa.Table(
    "order_items", metadata,
    sa.Column("order_id", sa.String(16), primary_key=True),
    sa.Column("line_number", sa.Integer, primary_key=True),
    sa.Column("product_id", sa.String(16), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("unit_price", sa.Numeric(12, 2), nullable=False),
)

T0 = datetime(2025, 1, 1, 9, 0, 0)


def build_shop(engine: sa.Engine, n_customers: int = 20, n_products: int = 8, n_orders: int = 60) -> None:
    """A small deterministic shop: orders spread over 60 days, 1-3 items each."""
    metadata.create_all(engine)
    with engine.begin() as con:
        con.execute(customers.insert(), [
            {"customer_id": f"c_{i:06d}", "email": f"user{i}@example.com", "country": ["DE", "GB", "US"][i % 3],
             "created_at": T0 + timedelta(hours=i), "updated_at": T0 + timedelta(hours=i)}
            for i in range(n_customers)])
        con.execute(products.insert(), [
            {"product_id": f"p_{i:04d}", "name": f"Product {i}", "category": ["shoes", "hats"][i % 2],
             "price": Decimal(f"{10 + i}.99"), "updated_at": T0}
            for i in range(n_products)])
        add_orders(con, range(n_orders), n_customers, n_products)


def add_orders(con, ids, n_customers: int = 20, n_products: int = 8) -> None:
    rows, items = [], []
    for i in ids:
        created = T0 + timedelta(days=i % 60, minutes=i)
        lines = 1 + i % 3
        total = Decimal(0)
        for ln in range(1, lines + 1):
            price = Decimal(f"{10 + (i + ln) % n_products}.99")
            qty = 1 + (i + ln) % 2
            total += price * qty
            items.append({"order_id": f"o_{i:08d}", "line_number": ln, "product_id": f"p_{(i + ln) % n_products:04d}",
                          "quantity": qty, "unit_price": price})
        rows.append({"order_id": f"o_{i:08d}", "customer_id": f"c_{i % n_customers:06d}", "status": "delivered",
                     "currency": ["USD", "EUR", "GBP"][i % 3], "total_amount": total, "created_at": created,
                     "updated_at": created + timedelta(hours=2)})
    con.execute(orders.insert(), rows)
    con.execute(order_items.insert(), items)
