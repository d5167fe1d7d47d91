"""One read-only query against a warehouse file, shared by the tests."""
from __future__ import annotations

import datetime as dt
import decimal
import math
from pathlib import Path

import duckdb


def query(warehouse: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def lake_connection(lake_url: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view ``raw.<table>`` over ``<lake>/raw/<table>/*.parquet``
    for every table folder of a local lake (engine=spark), so that the same SQL reads the
    lake and the warehouse."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE SCHEMA raw")
    root = Path(lake_url) / "raw"
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if folder.is_dir() and any(folder.glob("*.parquet")):
            con.execute(f"CREATE VIEW raw.\"{folder.name}\" AS "
                        f"SELECT * FROM read_parquet('{folder}/*.parquet')")
    return con


def raw_query(settings, sql: str, params=None) -> list[tuple]:
    """``sql`` against the raw layer of ``settings.engine``: the warehouse, or the lake."""
    if settings.engine != "spark":
        return query(settings.warehouse, sql, params)
    con = lake_connection(settings.lake_url)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def comparable(value):
    """A value as both engines' marts compare: timestamps as naive UTC instants (Spark's read
    back as UTC instants, DuckDB's marts hold naive UTC), decimals as floats."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def row_sort_key(row: tuple) -> tuple:
    # floats rounded for ordering only, so last-bit differences cannot reorder rows
    return tuple((v is None, f"{v:.6g}" if isinstance(v, float) else str(v)) for v in row)


def same_value(a, b) -> bool:
    """Equal, doubles to 1e-9 relative (the engines' float arithmetic differs in the last bits)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    return a == b


def first_differing_row(cols: list[str], rows_a: list[tuple], rows_b: list[tuple]) -> dict | None:
    """Of two equally long, equally sorted row lists: the first row pair that differs (by
    :func:`same_value`), as ``{column: (a, b)}`` for its differing columns; None if all agree."""
    for row_a, row_b in zip(rows_a, rows_b):
        if not all(same_value(a, b) for a, b in zip(row_a, row_b)):
            return {c: (a, b) for c, a, b in zip(cols, row_a, row_b) if not same_value(a, b)}
    return None
