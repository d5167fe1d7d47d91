"""Empty raw tables for a source a shop does not have (DESIGN.md §6 "Shapes").

An orders-only shop has no landing folder and an events-only shop no shop database; the
dbt sources still need every raw table. The missing ones are created empty by the same
dlt pipeline (and dlt schema) that loads them, with the column hints of a real load, so
that the first real load later appends or merges into them as if it had created them.
"""
from __future__ import annotations

import copy
import logging

import dlt
import duckdb
import pyarrow as pa

log = logging.getLogger(__name__)


def _ts() -> dict:
    return {"data_type": "timestamp", "timezone": False, "precision": 6}


# The shop tables as dlt's sql_database (pyarrow backend) reflects the shop schema of
# DESIGN.md §1.2 (tests/shop_fixtures.py), all columns nullable: a real load later adds
# its rows without altering them.
SHOP_TABLE_COLUMNS: dict[str, dict[str, dict]] = {
    "customers": {"customer_id": {"data_type": "text"}, "email": {"data_type": "text"},
                  "country": {"data_type": "text"}, "created_at": _ts(), "updated_at": _ts()},
    "products": {"product_id": {"data_type": "text"}, "name": {"data_type": "text"},
                 "category": {"data_type": "text"},
                 "price": {"data_type": "decimal", "precision": 12, "scale": 2}, "updated_at": _ts()},
    "orders": {"order_id": {"data_type": "text"}, "customer_id": {"data_type": "text"},
               "status": {"data_type": "text"}, "currency": {"data_type": "text"},
               "total_amount": {"data_type": "decimal", "precision": 12, "scale": 2},
               "created_at": _ts(), "updated_at": _ts()},
    "order_items": {"order_id": {"data_type": "text"}, "line_number": {"data_type": "bigint"},
                    "product_id": {"data_type": "text"}, "quantity": {"data_type": "bigint"},
                    "unit_price": {"data_type": "decimal", "precision": 12, "scale": 2}},
}
SHOP_PRIMARY_KEYS = {"customers": ["customer_id"], "products": ["product_id"], "orders": ["order_id"],
                     "order_items": ["order_id", "line_number"]}
_ARROW_TYPES = {"text": pa.string(), "bigint": pa.int64(), "timestamp": pa.timestamp("us")}


def raw_tables(connection: duckdb.DuckDBPyConnection, dataset: str) -> set[str]:
    return {r[0] for r in connection.execute(
        "select table_name from information_schema.tables where table_schema = ?", [dataset]).fetchall()}


def _arrow_schema(columns: dict[str, dict]) -> pa.Schema:
    fields = []
    for name, hint in columns.items():
        kind = hint["data_type"]
        typ = pa.decimal128(hint["precision"], hint["scale"]) if kind == "decimal" else _ARROW_TYPES[kind]
        fields.append(pa.field(name, typ))
    return pa.schema(fields)


def create_empty_tables(pipeline: dlt.Pipeline, existing: set[str],
                        tables: dict[str, tuple[pa.Schema | None, dict[str, dict], dict]]) -> list[str]:
    """Create those of ``tables`` (name -> (Arrow schema or None to derive it from the
    hints, dlt column hints, other dlt table hints)) that are not in ``existing`` (the raw
    tables the destination has), with one dlt run of empty Arrow tables. Returns the names
    created. In the lake (engine=spark) dlt writes each as one empty parquet file that
    carries the full schema."""
    missing = sorted(set(tables) - existing)
    if not missing:
        return []
    resources = []
    for name in missing:
        schema, columns, hints = tables[name]
        empty = (schema or _arrow_schema(columns)).empty_table()
        # dlt fills hint dicts in place: hand it copies
        resources.append(dlt.resource([empty], name=name, columns=copy.deepcopy(columns), **copy.deepcopy(hints)))
    pipeline.run(resources, loader_file_format="parquet").raise_on_failed_jobs()
    log.info("created empty raw tables %s (pipeline %s)", ", ".join(missing), pipeline.pipeline_name)
    return missing
