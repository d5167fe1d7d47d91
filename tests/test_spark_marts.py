"""The same dbt project on Spark (dbt-spark, session method, ``local[2]``) gives the same tables
as on DuckDB (issue 19, DESIGN §6 "Engines"), through the real dbt CLI and a real JVM.

A small simulated shop is loaded with the DuckDB pipeline and built with dbt-duckdb; its raw
schema is exported to a parquet lake (tests/spark_lake.py: append-only files per night, the
shop tables as versions, plus stale older versions that staging must ignore) and the project
is built with ``--target spark`` over it. Every mart, every monitoring table and the staging
tables Python reads must equal the DuckDB build row for row (doubles to 1e-9 relative). The
Spark tables are read the way Nightjar's reader reads them: their parquet files under
``<spark warehouse>/<schema>.db/<table>/``, with DuckDB. Then a second night (new and late
files, status changes and refunds of old orders): DuckDB builds incrementally, Spark
builds again, and the tables are still equal.

A third test checks the keyed HMAC on Spark against Python's ``hmac`` on test_pii's vectors
(one ``dbt show --target spark``).

One Spark build per night (JVM start-up is tens of seconds on a busy 2-core machine); the
first also runs the project's dbt unit tests on Spark. The data tests run on Spark in
tests/test_spark_e2e.py (``nightjar run`` builds with them).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from querying import comparable, first_differing_row, row_sort_key  # noqa: E402
from spark_lake import export_raw  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.spark]

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO / "dbt_project"
_VENV_DBT = REPO / ".venv" / "bin" / "dbt"
DBT = str(_VENV_DBT) if _VENV_DBT.exists() else (shutil.which("dbt") or "dbt")
PII_KEY = "spark-test-pii-key"
# staging tables that Python (ML, alerts, report) reads; every marts.* and monitoring.* table too
# seeds and models (and unit tests on the first night); the data tests run in tests/test_spark_e2e.py
BUILD = ["build", "--resource-type", "seed", "--resource-type", "model"]
STAGING_READ_BY_PYTHON = ["stg_events", "stg_orders", "stg_order_items", "stg_products", "stg_customers"]


def _env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NIGHTJAR_", "SPARK_"))}
    env.update(NIGHTJAR_DATA_DIR=str(data), NIGHTJAR_PII_KEY=PII_KEY, NIGHTJAR_SPARK_MASTER="local[2]",
               NIGHTJAR_ENGINE="duckdb")
    # Extra Spark conf the way Nightjar hands it to dbt (a spark-defaults.conf in SPARK_CONF_DIR):
    # a few shuffle partitions, as for any small data set (Spark's 200 cost minutes here)
    conf_dir = data / "spark-conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "spark-defaults.conf").write_text("spark.sql.shuffle.partitions 4\nspark.ui.enabled false\n")
    env["SPARK_CONF_DIR"] = str(conf_dir)
    return env


def _dbt(args: list[str], data: Path, name: str) -> str:
    proc = subprocess.run(
        [DBT, *args, "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
         "--target-path", str(data / f"target-{name}"), "--log-path", str(data / f"logs-{name}")],
        cwd=PROJECT, env=_env(data), capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    return proc.stdout


def _load_duckdb(data: Path) -> None:
    from nightjar.ingest import load_events, load_shop
    from nightjar.settings import get_settings

    settings = get_settings(_env(data))
    load_events(settings)
    load_shop(settings)


def _compared_tables(warehouse: Path) -> list[str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "select table_schema || '.' || table_name from information_schema.tables "
            "where table_schema in ('marts', 'monitoring') order by 1").fetchall()
    return [r[0] for r in rows] + [f"staging.{t}" for t in STAGING_READ_BY_PYTHON]


def _read(con: duckdb.DuckDBPyConnection, relation: str) -> tuple[list[str], list[tuple]]:
    cur = con.execute(f"select * from {relation}")
    cols = [d[0] for d in cur.description]
    return cols, sorted((tuple(comparable(v) for v in r) for r in cur.fetchall()), key=row_sort_key)


def _spark_files(spark_warehouse: Path, table: str) -> str:
    schema, name = table.split(".")
    return f"read_parquet('{spark_warehouse / f'{schema}.db' / name}/**/*.parquet')"


def assert_equal_marts(data: Path) -> dict[str, int]:
    """Every compared table: the Spark parquet files equal the DuckDB warehouse, row for row."""
    warehouse, spark_warehouse = data / "warehouse.duckdb", data / "spark-warehouse"
    counts, problems = {}, []
    con = duckdb.connect()
    try:
        con.execute(f"attach '{warehouse}' as duck (read_only)")
        for table in _compared_tables(warehouse):
            duck_cols, duck_rows = _read(con, f"duck.{table}")
            spark_cols, spark_rows = _read(con, _spark_files(spark_warehouse, table))
            counts[table] = len(duck_rows)
            if duck_cols != spark_cols:
                problems.append(f"{table}: columns {duck_cols} != {spark_cols}")
            elif len(duck_rows) != len(spark_rows):
                problems.append(f"{table}: {len(duck_rows)} rows on DuckDB, {len(spark_rows)} on Spark")
            elif (diff := first_differing_row(duck_cols, duck_rows, spark_rows)) is not None:
                problems.append(f"{table}: first differing row {diff}")
    finally:
        con.close()
    assert problems == [], "\n".join(problems)
    return counts


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    """Night 1: a small shop loaded, built on DuckDB, exported to the lake, built on Spark."""
    from nightjar.simulator import simulate

    data = tmp_path_factory.mktemp("spark_marts") / "data"
    simulate(data, start=dt.date(2025, 3, 1), days=21, customers=80, seed=5)
    _load_duckdb(data)
    _dbt(BUILD, data, "duckdb")
    written = export_raw(data / "warehouse.duckdb", data / "lake", 1, stale_versions=True)
    assert written["events"] > 0 and written["orders"] > 0
    # the project's dbt unit tests (sessions, retention, identity, attribution edge cases)
    # run on Spark too, each right before its model
    _dbt([*BUILD, "--resource-type", "unit_test", "--target", "spark"], data, "spark")
    results = json.loads((data / "target-spark" / "run_results.json").read_text())["results"]
    unit = [r for r in results if r["unique_id"].startswith("unit_test.")]
    assert len(unit) >= 20 and all(r["status"] == "pass" for r in unit), [(r["unique_id"], r["status"]) for r in unit]
    return data


def test_spark_marts_equal_duckdb_marts_over_two_nights(shop: Path) -> None:
    # one test, not two: pytest-xdist could run a second one on another worker, which would
    # build its own first night (two more Spark builds)
    _first_night(shop)
    _second_night(shop)


def _first_night(shop: Path) -> None:
    counts = assert_equal_marts(shop)
    # not vacuous: the marts the product is about have rows
    for table in ("marts.fct_sessions", "marts.fct_daily_metrics", "marts.dim_customers",
                  "marts.fct_attribution", "staging.stg_orders", "staging.stg_events"):
        assert counts[table] > 0, counts
    # the lake holds stale versions of shop rows; staging kept one row per key, the latest
    with duckdb.connect() as con:
        raw_orders = con.execute(f"select count(*), count(distinct order_id) from "
                                 f"read_parquet('{shop}/lake/raw/orders/*.parquet')").fetchone()
    assert raw_orders[0] > raw_orders[1]
    # keyed HMAC on Spark = Python's hmac: every customer's email_hash
    with duckdb.connect() as con:
        emails = dict(con.execute(
            f"select customer_id, email from read_parquet('{shop}/lake/raw/customers/night1.parquet')").fetchall())
        hashes = dict(con.execute(
            f"select customer_id, email_hash from {_spark_files(shop / 'spark-warehouse', 'staging.stg_customers')}"
        ).fetchall())
    checked = [c for c in hashes if c in emails and emails[c]]
    assert checked
    for c in checked:
        expected = hmac.new(PII_KEY.encode(), emails[c].strip().lower().encode(), hashlib.sha256).hexdigest()
        assert hashes[c] == expected, c
    # the key never reaches dbt's compiled SQL, artifacts or logs (only its placeholder)
    for folder in ("target-spark", "logs-spark"):
        for path in (shop / folder).rglob("*"):
            if path.is_file():
                blob = path.read_bytes()
                assert PII_KEY.encode() not in blob and PII_KEY.encode().hex().encode() not in blob, path


def _second_night(shop: Path) -> None:
    from nightjar.simulator import append_days

    append_days(shop, 1)
    _load_duckdb(shop)
    # DuckDB: an incremental run (the nightly one without its data tests); Spark: its build of
    # the night (the incremental models rebuilt in full, macros/incremental_materialization.sql)
    _dbt(BUILD, shop, "duckdb")
    written = export_raw(shop / "warehouse.duckdb", shop / "lake", 2)
    assert written["events"] > 0
    # the night changed old orders: new versions of them are appended to the lake
    assert written["orders"] > 0
    _dbt([*BUILD, "--target", "spark"], shop, "spark")
    assert_equal_marts(shop)


def test_keyed_hmac_on_spark_equals_python(tmp_path: Path) -> None:
    """spark__hmac_sha256_hex = Python's hmac for the vectors of tests/test_pii.py (keys shorter
    than, exactly and longer than the 64-byte block, non-ASCII); the key reaches Spark intact
    through the profile's hex conf even with a quote and a backslash in it."""
    from test_pii import VECTORS, _rows

    key = "a 'quoted' key\\with a backslash"
    assert not any("'" in k + m or "\\" in k + m for k, m in VECTORS)
    values = ", ".join(f"({i}, '{k}', '{m}')" for i, (k, m) in enumerate(VECTORS))
    sql = (f"select i, {{{{ nightjar.hmac_sha256_hex('k', 'm') }}}} as h from values {values} as v(i, k, m)"
           " union all select 100, {{ nightjar.pseudonymise_identifier(\"'bob@example.com'\") }}")
    data = tmp_path / "data"
    env = {**_env(data), "NIGHTJAR_PII_KEY": key}
    proc = subprocess.run(
        [DBT, "show", "--target", "spark", "--inline", sql, "--output", "json", "--limit", "-1",
         "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=900)
    got = {r["i"]: r["h"] for r in _rows(proc)}
    for i, (k, m) in enumerate(VECTORS):
        assert got[i] == hmac.new(k.encode(), m.encode(), hashlib.sha256).hexdigest(), (k, m)
    assert got[100] == hmac.new(key.encode(), b"bob@example.com", hashlib.sha256).hexdigest()
