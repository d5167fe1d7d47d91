"""A short, readable account of what is in the warehouse (printed after `nightjar run`)."""
from __future__ import annotations

from pathlib import Path

import duckdb

SCHEMAS = ("raw", "staging", "intermediate", "marts", "ml", "alerts")


def table_counts(warehouse: Path) -> dict[str, int]:
    """Row counts of every Nightjar table, keyed `schema.table`, in schema order."""
    if not warehouse.exists():
        return {}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            """
            select table_schema, table_name from information_schema.tables
            where table_schema in (select unnest(?::varchar[]))
              and table_name not like '\\_dlt%' escape '\\'
            """,
            [list(SCHEMAS)],
        ).fetchall()
        order = {s: i for i, s in enumerate(SCHEMAS)}
        rows.sort(key=lambda r: (order[r[0]], r[1]))
        return {
            f"{s}.{t}": con.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0] for s, t in rows
        }
    finally:
        con.close()


def format_summary(warehouse: Path) -> str:
    counts = table_counts(warehouse)
    if not counts:
        return f"warehouse {warehouse} is empty"
    width = max(len(k) for k in counts)
    lines = [f"Warehouse: {warehouse}", "", f"{'table'.ljust(width)}  rows"]
    lines += [f"{name.ljust(width)}  {n:>12,}" for name, n in counts.items()]
    rejected = counts.get("raw.events_rejected", 0)
    loaded = counts.get("raw.events", 0)
    if loaded or rejected:
        share = rejected / (loaded + rejected)
        lines += ["", f"Quarantined event lines: {rejected:,} ({share:.3%} of {loaded + rejected:,} read)"]
    return "\n".join(lines)
