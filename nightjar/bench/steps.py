"""One benchmark step per process: ``python -m nightjar.bench.steps STEP '<json args>'``.

Prints one line ``BENCH_RESULT {json}`` with the step's own wall/CPU time of the measured
operation (after imports) and step-specific counts. The parent (harness) adds process wall
time, CPU and peak RSS from ``wait4``.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

STEPS: dict[str, Callable[[dict], dict]] = {}


def step(fn: Callable[[dict], dict]) -> Callable[[dict], dict]:
    STEPS[fn.__name__] = fn
    return fn


def _connect(warehouse: str, config: dict | None):
    import duckdb

    con = duckdb.connect(warehouse, config={k: v for k, v in (config or {}).items()})
    con.execute("SET TimeZone = 'UTC'")
    return con


@step
def simulate(a: dict) -> dict:
    from datetime import date

    from nightjar.simulator import SimConfig, append_days
    from nightjar.simulator import simulate as sim

    if a.get("append_days"):
        return append_days(Path(a["out"]), int(a["append_days"]))
    return sim(
        Path(a["out"]), start=date.fromisoformat(a["start"]), days=a["days"], customers=a["customers"],
        seed=a["seed"], config=SimConfig(traffic_scale=a["traffic_scale"]),
    )


@step
def events_dlt(a: dict) -> dict:
    from nightjar.ingest import load_events

    s = load_events()
    return {"rows": s["rows_loaded"], "rejected": s["rows_rejected"], "lines": s["lines_read"],
            "files": s["files_loaded"]}


@step
def shop_dlt(a: dict) -> dict:
    from nightjar.ingest import load_shop

    s = load_shop()
    return {"rows": s["rows_total"], "by_table": s["rows"]}


@step
def ingest(a: dict) -> dict:
    """Both dlt loads in one process, events then shop: how the nightly Dagster job runs them
    (in-process executor, dagster_project/definitions.py), so Python, dlt and pyarrow are
    imported once, as in the job, not once per load."""
    out: dict[str, Any] = {}
    for prefix, load in (("events", events_dlt), ("shop", shop_dlt)):
        t0 = time.perf_counter()
        out.update({f"{prefix}_{k}": v for k, v in load(a).items()})
        out[f"{prefix}_op_wall_s"] = round(time.perf_counter() - t0, 3)
    return out


@step
def events_duckdb(a: dict) -> dict:
    """The limit: DuckDB reads the same landing files itself (read_json -> table), no
    validation beyond DuckDB's own JSON parsing (broken lines are skipped)."""
    con = _connect(a["warehouse"], a.get("config"))
    pattern = f"{a['events_dir']}/dt=*/*.jsonl*"
    # the raw.events contract's columns and types, given explicitly: no schema sniffing
    # per file (auto-detection with union_by_name costs DuckDB ~3x the CPU here)
    columns = ("{'event_id': 'VARCHAR', 'event_name': 'VARCHAR', 'timestamp': 'TIMESTAMPTZ', "
               "'received_at': 'TIMESTAMPTZ', 'anonymous_id': 'VARCHAR', 'user_id': 'VARCHAR', "
               "'session_id': 'VARCHAR', 'properties': 'JSON', 'context': 'JSON'}")
    con.execute(
        f"""CREATE OR REPLACE TABLE events_direct AS
        SELECT * FROM read_json('{pattern}', format='newline_delimited', ignore_errors=true,
                                filename=true, columns={columns})"""
    )
    n = con.execute("SELECT count(*) FROM events_direct").fetchone()[0]
    con.close()
    return {"rows": n}


@step
def shop_duckdb(a: dict) -> dict:
    """The limit for the shop tables. DuckDB's sqlite extension cannot be downloaded here
    (no extension repository access, and the PyPI duckdb-ext-sqlite wheels are built for
    DuckDB 1.4, not 2.0), so: Python's built-in sqlite3 (C) fetches whole tables, columns
    go to Arrow in one call each, DuckDB creates the tables from Arrow. No dlt, no
    SQLAlchemy, no merge."""
    import sqlite3

    import pyarrow as pa

    con = _connect(a["warehouse"], a.get("config"))
    src = sqlite3.connect(a["sqlite_path"])
    total = 0
    for table in ("customers", "products", "orders", "order_items"):
        cur = src.execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
        cols = list(zip(*rows)) if rows else [[] for _ in names]
        arrow = pa.table({n: pa.array(c) for n, c in zip(names, cols)})
        con.register("src_arrow", arrow)
        con.execute(f"CREATE OR REPLACE TABLE {table}_direct AS SELECT * FROM src_arrow")
        con.unregister("src_arrow")
        total += len(rows)
        del rows, cols, arrow
    con.close()
    return {"rows": total}


@step
def handwritten(a: dict) -> dict:
    from nightjar.pii_key import read_key
    from nightjar.settings import get_settings

    con = _connect(a["warehouse"], a.get("config"))
    # the script pseudonymises with the key dbt uses, from the same session variable
    con.execute("SET VARIABLE nightjar_pii_key = ?", [read_key(get_settings().pii_key_file)])
    con.execute(Path(a["sql_file"]).read_text())
    n = con.execute("SELECT count(*) FROM hw.fct_sessions").fetchone()[0]
    con.close()
    return {"sessions": n}


@step
def compare(a: dict) -> dict:
    """Compare the hand-written marts (schema hw) with dbt's (schema marts), row for row
    (EXCEPT ALL both ways over the columns the hand-written table has; doubles rounded)."""
    con = _connect(a["warehouse"], a.get("config"))
    out: dict[str, Any] = {}
    for table in a["tables"]:
        cols = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'hw' AND table_name = ? ORDER BY ordinal_position", [table]
        ).fetchall()
        exprs = [
            f"round({c}::DOUBLE, 6) AS {c}" if t in ("DOUBLE", "FLOAT", "REAL") or t.startswith("DECIMAL") else c
            for c, t in ((f'"{c}"', t) for c, t in cols)
        ]
        sel = ", ".join(exprs)
        n_dbt = con.execute(f"SELECT count(*) FROM marts.{table}").fetchone()[0]
        n_hw = con.execute(f"SELECT count(*) FROM hw.{table}").fetchone()[0]
        only_dbt = con.execute(
            f"SELECT count(*) FROM (SELECT {sel} FROM marts.{table} EXCEPT ALL SELECT {sel} FROM hw.{table})"
        ).fetchone()[0]
        only_hw = con.execute(
            f"SELECT count(*) FROM (SELECT {sel} FROM hw.{table} EXCEPT ALL SELECT {sel} FROM marts.{table})"
        ).fetchone()[0]
        out[table] = {"rows_dbt": n_dbt, "rows_handwritten": n_hw, "only_dbt": only_dbt,
                      "only_handwritten": only_hw, "columns": len(cols),
                      "equal": only_dbt == 0 and only_hw == 0}
    con.close()
    return {"tables": out, "equal": all(v["equal"] for v in out.values())}


# Modules each step needs, imported before the clock starts: importing them is process
# start-up (the harness reports it in the process wall/CPU), not the measured operation.
# pandas is included because pyarrow imports it lazily on first use in both the dlt and the
# direct steps.
_PREIMPORT = {
    "events_dlt": ["nightjar.ingest", "pandas"],
    "shop_dlt": ["nightjar.ingest", "pandas"],
    "ingest": ["nightjar.ingest", "pandas"],
    "events_duckdb": ["duckdb", "pyarrow", "pandas"],
    "shop_duckdb": ["sqlite3", "duckdb", "pyarrow", "pandas"],
}


def main(argv: list[str]) -> int:
    name, args = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    import importlib
    import logging

    logging.basicConfig(level=logging.WARNING)
    for module in _PREIMPORT.get(name, ()):
        importlib.import_module(module)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    extra = STEPS[name](args) or {}
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    res = {
        "op_wall_s": round(wall, 3),
        "op_cpu_s": round(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, 3),
        **{k: v for k, v in extra.items() if isinstance(v, (int, float, str, bool, dict, list, type(None)))},
    }
    sys.stdout.write("BENCH_RESULT " + json.dumps(res, default=str) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown (not part of any step's cost)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
