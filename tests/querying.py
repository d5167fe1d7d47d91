"""One read-only query against a warehouse file, shared by the tests."""
from __future__ import annotations

from pathlib import Path

import duckdb


def query(warehouse: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()
