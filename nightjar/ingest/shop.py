"""dlt source over the shop database (SQLite by default, PostgreSQL in production).

* ``customers``, ``products``, ``orders``: ``dlt.sources.sql_database.sql_table`` with
  ``dlt.sources.incremental("updated_at")`` and ``write_disposition="merge"`` on the primary
  key. The cursor range is closed (``updated_at >= last value``) and dlt de-duplicates the
  boundary rows it already loaded, so an unchanged re-run extracts 0 rows and rows written
  in the same second as the last cursor are not missed. A refund of an old order moves its
  ``updated_at``: the row is re-extracted and merged (updated in place, not duplicated).
* ``order_items`` has no ``updated_at``. It is a dlt *transformer* fed by the ``orders``
  resource *after* its incremental filter: for every batch of orders extracted in this run
  it reads the items of exactly those orders (``WHERE order_id IN (...)``, chunks of
  ``IN_CHUNK`` ids) and merges on ``(order_id, line_number)``. New orders bring their
  items; status changes re-extract a handful of unchanged items (idempotent merge); an
  unchanged re-run extracts 0 items. Cost is proportional to the orders changed.
  Assumption (ARCHITECTURE.md): items are written once, in the same transaction as
  their order; an item inserted later without touching ``orders.updated_at`` would
  not be seen.
* Hard deletes in the shop are not propagated (no soft-delete column in the contract).
* Backend ``pyarrow`` (Arrow batches, exact reflected types) works for SQLite and
  PostgreSQL; ``sqlalchemy`` is available as a fallback.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

import dlt
import sqlalchemy as sa
from dlt.sources.sql_database import sql_table
from dlt.sources.sql_database.helpers import TableLoader
from dlt.sources.sql_database.schema_types import table_to_columns

SHOP_TABLES = {
    "customers": ["customer_id"],
    "products": ["product_id"],
    "orders": ["order_id"],
}
ORDER_ITEMS_KEY = ["order_id", "line_number"]
IN_CHUNK = 5_000
CHUNK_SIZE = 50_000


def _order_ids(batch: Any) -> list:
    if hasattr(batch, "column_names"):  # pyarrow Table / RecordBatch
        return batch.column("order_id").to_pylist()
    if hasattr(batch, "columns") and hasattr(batch, "iloc"):  # pandas
        return batch["order_id"].tolist()
    return [row["order_id"] for row in batch]


def _chunks(seq: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


@dlt.source(name="nightjar_shop", max_table_nesting=0)
def shop_source(
    credentials: str | sa.Engine,
    schema: str | None = None,
    backend: str = "pyarrow",
    chunk_size: int = CHUNK_SIZE,
) -> Iterable[Any]:
    engine = credentials if isinstance(credentials, sa.Engine) else sa.create_engine(credentials)
    resources = {}
    for table, pk in SHOP_TABLES.items():
        resources[table] = sql_table(
            credentials=engine,
            table=table,
            schema=schema,
            backend=backend,
            chunk_size=chunk_size,
            reflection_level="full",
            incremental=dlt.sources.incremental("updated_at"),
            primary_key=pk,
            write_disposition="merge",
        )

    items_table = sa.Table("order_items", sa.MetaData(schema=schema), autoload_with=engine)
    items_columns = table_to_columns(items_table, "full")

    @dlt.transformer(
        name="order_items",
        data_from=resources["orders"],
        primary_key=ORDER_ITEMS_KEY,
        write_disposition="merge",
        columns=items_columns,
    )
    def order_items(orders_batch: Any) -> Iterator[Any]:
        ids = sorted(set(_order_ids(orders_batch)))
        for chunk in _chunks(ids, IN_CHUNK):
            def only_these_orders(query, table, _ids=list(chunk)):
                return query.where(table.c.order_id.in_(_ids)).order_by(
                    table.c.order_id, table.c.line_number
                )

            loader = TableLoader(
                engine,
                backend,
                items_table,
                dict(items_columns),
                chunk_size=chunk_size,
                query_adapter_callback=only_these_orders,
            )
            yield from loader.load_rows({})

    return [*resources.values(), order_items]
