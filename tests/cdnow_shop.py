"""CDNOW (the `lifetimes` package's copy) as an orders-only shop database.

CDNOW_master.txt has one line per purchase: ``customer_id date(YYYYMMDD) cds dollars``
(23,570 customers who first bought in Q1 1997, their purchases until 1998-06-30). It has
no products, times of day, currencies or statuses, so the shop is modelled like this:

* ``customers``: one per CDNOW id (``cdnow_<id>``); no e-mail or country (the file has
  none); ``created_at`` = the day of the first purchase.
* ``products``: one placeholder, ``cdnow_cd`` ("CD (CDNOW has no product detail)"),
  category ``music``.
* ``orders``: one per line of the file (a customer's two purchases on one day stay two
  orders), ``status`` delivered (historic purchases, no cancellations or refunds known),
  ``currency`` USD, ``total_amount`` = dollars, ``created_at`` = the purchase day at
  12:00 UTC (any time of the day gives the same daily marts).
* ``order_items``: one line per order with the placeholder product, ``quantity`` = cds and
  ``unit_price`` = dollars / cds rounded to cents (the order's total stays exact; revenue
  comes from it, units from the quantity). A purchase of 0 CDs keeps quantity 0 and
  unit price 0.
"""
from __future__ import annotations

import importlib.util
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import sqlalchemy as sa

from shop_fixtures import metadata as _shop_metadata

# The shop tables of tests/shop_fixtures.py, with a nullable e-mail (CDNOW has none).
metadata = sa.MetaData()
for _table in _shop_metadata.sorted_tables:
    _table.to_metadata(metadata)
metadata.tables["customers"].c.email.nullable = True
customers, products, orders, order_items = (metadata.tables[t] for t in ("customers", "products", "orders", "order_items"))

PRODUCT_ID = "cdnow_cd"
TIME_OF_DAY = timedelta(hours=12)


def cdnow_file() -> Path:
    """The file inside the installed package, found without importing it (`import
    lifetimes` takes seconds; `lifetimes.datasets` even needs setuptools' pkg_resources)."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the lifetimes package (a dependency, in requirements.lock) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "CDNOW_master.txt"


@dataclass(frozen=True)
class Purchase:
    line: int  # 1-based, after the header
    customer: str
    day: date
    cds: int
    dollars: Decimal


def read_purchases(path: Path | None = None) -> list[Purchase]:
    out = []
    with open(path or cdnow_file()) as fh:
        for n, text in enumerate(fh, start=1):
            if n == 1 or not text.strip():  # the header line, a trailing blank line
                continue
            customer, day, cds, dollars = text.split()
            out.append(Purchase(n - 1, customer, date(int(day[:4]), int(day[4:6]), int(day[6:])), int(cds),
                                Decimal(dollars)))
    return out


def daily_totals(purchases: list[Purchase]) -> dict[date, tuple[int, Decimal, int]]:
    """day -> (purchases, dollars, cds): what the marts must show, from the file alone."""
    days: dict[date, list] = defaultdict(lambda: [0, Decimal(0), 0])
    for p in purchases:
        t = days[p.day]
        t[0] += 1
        t[1] += p.dollars
        t[2] += p.cds
    return {d: (n, s, u) for d, (n, s, u) in days.items()}


def _sqlite_time(d: date) -> str:
    # SQLAlchemy's DateTime storage format on SQLite, which its reflection (dlt) reads back
    return (datetime.combine(d, datetime.min.time()) + TIME_OF_DAY).strftime("%Y-%m-%d %H:%M:%S.%f")


def build_cdnow_shop(engine: sa.Engine, purchases: list[Purchase]) -> None:
    """Write `purchases` as the shop tables of DESIGN.md §1.2 (see the module docstring).
    The schema comes from SQLAlchemy; the 70k rows go in with one sqlite3 executemany per
    table (several times faster than SQLAlchemy's per-row type processing)."""
    metadata.create_all(engine)
    first: dict[str, date] = {}
    for p in purchases:
        first[p.customer] = min(first.get(p.customer, p.day), p.day)
    cent = Decimal("0.01")
    order_rows, item_rows = [], []
    for p in purchases:
        at = _sqlite_time(p.day)
        order_id = f"cdnow_{p.line:06d}"
        order_rows.append((order_id, f"cdnow_{p.customer}", "delivered", "USD", str(p.dollars), at, at))
        unit = (p.dollars / p.cds).quantize(cent, ROUND_HALF_UP) if p.cds else Decimal(0)
        item_rows.append((order_id, 1, PRODUCT_ID, p.cds, str(unit)))
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.executemany("insert into customers values (?, null, null, ?, ?)",
                        [(f"cdnow_{c}", _sqlite_time(d), _sqlite_time(d)) for c, d in sorted(first.items())])
        cur.execute("insert into products values (?, ?, ?, ?, ?)",
                    (PRODUCT_ID, "CD (CDNOW has no product detail)", "music", "15.00",
                     _sqlite_time(min(first.values()))))
        cur.executemany("insert into orders values (?, ?, ?, ?, ?, ?, ?)", order_rows)
        cur.executemany("insert into order_items values (?, ?, ?, ?, ?)", item_rows)
        raw.commit()
    finally:
        raw.close()
