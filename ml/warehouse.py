"""Small DuckDB helpers shared by the churn and forecast code (no Dagster here)."""
from __future__ import annotations

import hashlib

import duckdb
import pandas as pd


def table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, table = qualified.split(".", 1)
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchall()[0]
    return bool(row and row[0])


def missing_tables(con: duckdb.DuckDBPyConnection, tables: list[str]) -> list[str]:
    return [t for t in tables if not table_exists(con, t)]


def write_table(
    con: duckdb.DuckDBPyConnection,
    qualified: str,
    df: pd.DataFrame,
    columns: dict[str, str],
    mode: str = "replace",
) -> int:
    """Write ``df`` into ``qualified`` with the declared column types.

    The DDL is explicit so the table's schema is the contract in ARCHITECTURE.md even when
    ``df`` is empty or pandas inferred a different dtype. ``replace`` swaps the contents in
    one transaction, so readers never see a half-written table.
    """
    schema = qualified.split(".", 1)[0]
    cols_ddl = ", ".join(f"{c} {t}" for c, t in columns.items())
    select = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in columns.items())
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.register("_ml_write", df[list(columns)])
    try:
        con.execute("BEGIN TRANSACTION")
        if mode == "replace":
            con.execute(f"CREATE OR REPLACE TABLE {qualified} ({cols_ddl})")
        else:
            con.execute(f"CREATE TABLE IF NOT EXISTS {qualified} ({cols_ddl})")
        con.execute(f"INSERT INTO {qualified} SELECT {select} FROM _ml_write")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_ml_write")
    return len(df)


def data_fingerprint(con: duckdb.DuckDBPyConnection, tables: list[str]) -> str:
    """A content hash of the input tables (row count + order-independent row hash).

    Recorded with every model so that "which data was this trained on" has an answer and
    an unchanged warehouse can be recognised without storing the data.
    """
    parts = []
    for t in sorted(tables):
        n, h = con.execute(f"SELECT count(*), bit_xor(hash(x)) FROM {t} x").fetchall()[0]
        parts.append(f"{t}:{n}:{h}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
