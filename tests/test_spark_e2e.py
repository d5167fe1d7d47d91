"""`nightjar run` on Spark, end to end, as a user runs it.

Night 1: the README's command (`NIGHTJAR_ENGINE=spark .venv/bin/nightjar run`), verbatim from
a plain shell, on a fresh data dir: every mart (read back through the DuckDB views, as ML,
alerts and the report read them) equals a DuckDB `nightjar run` on the same shop.
Night 2 (late files, order updates) runs on a real standalone cluster (a Master and two
Workers on 127.0.0.1, tests/spark_cluster.py), as README "When one machine is not enough"
points Nightjar at one: Spark's own event log and the workers' status API show that tasks
ran in executors on both workers, and the marts still equal DuckDB's.

Slow (JVMs on a small machine): one test, one shop, two DuckDB nights beside two Spark ones.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from spark_cluster import read_event_logs, spark_cluster
from querying import comparable, first_differing_row, row_sort_key
from ui_helpers import REPO, plain_shell_env

pytestmark = [pytest.mark.slow, pytest.mark.spark]

PII_KEY = "spark-e2e-pii-key"
# the load bookkeeping of each engine's own ingestion run: when, and under which dlt load id
LOAD_COLUMNS = {"_loaded_at", "_last_loaded_at", "_max_loaded_at", "_dlt_load_id", "_dlt_id"}
README_RUN = re.compile(r"^NIGHTJAR_DATA_DIR=(\S+) NIGHTJAR_ENGINE=spark \.venv/bin/nightjar run$")


def _readme_spark_command() -> tuple[str, str]:
    from test_readme import readme_commands

    for command in readme_commands((REPO / "README.md").read_text()):
        if m := README_RUN.match(command):
            return command, m.group(1)
    raise AssertionError("README has no `NIGHTJAR_DATA_DIR=... NIGHTJAR_ENGINE=spark .venv/bin/nightjar run`")


def _sh(command: str, cwd: Path, timeout: float = 3600, **settings: str) -> str:
    env = plain_shell_env(NIGHTJAR_PII_KEY=PII_KEY, **settings)
    proc = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"`{command}` failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def read_marts(warehouse: Path) -> dict[str, tuple[list[str], list[tuple]]]:
    """Every `marts.*` relation of a warehouse file (tables on DuckDB, views under Spark):
    its columns (without load bookkeeping) and its rows, sorted."""
    out = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        names = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'marts' order by 1").fetchall()]
        for name in names:
            cols = [r[0] for r in con.execute(
                "select column_name from information_schema.columns where table_schema = 'marts' "
                "and table_name = ? order by ordinal_position", [name]).fetchall() if r[0] not in LOAD_COLUMNS]
            rows = con.execute(f'select {", ".join(chr(34) + c + chr(34) for c in cols)} from marts."{name}"').fetchall()
            out[name] = (cols, sorted((tuple(comparable(v) for v in r) for r in rows), key=row_sort_key))
    return out


def assert_same_marts(duck: dict, spark: dict) -> None:
    problems = []
    if sorted(duck) != sorted(spark):
        problems.append(f"marts on DuckDB only: {sorted(set(duck) - set(spark))}, on Spark only: "
                        f"{sorted(set(spark) - set(duck))}")
    for name in sorted(set(duck) & set(spark)):
        (d_cols, d_rows), (s_cols, s_rows) = duck[name], spark[name]
        if sorted(d_cols) != sorted(s_cols):
            problems.append(f"{name}: columns {d_cols} != {s_cols}")
            continue
        if d_cols != s_cols:  # same columns, another order: compare by name
            idx = [s_cols.index(c) for c in d_cols]
            s_rows = sorted((tuple(r[i] for i in idx) for r in s_rows), key=row_sort_key)
        if len(d_rows) != len(s_rows):
            problems.append(f"{name}: {len(d_rows)} rows on DuckDB, {len(s_rows)} on Spark")
            continue
        if (diff := first_differing_row(d_cols, d_rows, s_rows)) is not None:
            problems.append(f"{name}: first differing row {diff}")
    assert problems == [], "\n".join(problems)


def test_nightjar_run_on_spark_equals_duckdb_the_second_night_on_a_standalone_cluster(
        tmp_path: Path, small_shop_template: Path) -> None:
    # one test: each Spark night is minutes of JVM, and pytest-xdist would give a second test
    # of this module its own first night on another worker
    root = tmp_path / "work"  # a user's working directory, the venv as `.venv`
    root.mkdir()
    (root / ".venv").symlink_to(REPO / ".venv")
    duck = root / "duck"
    shutil.copytree(small_shop_template, duck)
    _sh(".venv/bin/nightjar run", root, NIGHTJAR_DATA_DIR=str(duck))
    duck_night1 = read_marts(duck / "warehouse.duckdb")

    # night 1: the README's command, verbatim, on a fresh data dir (local[*])
    command, data_arg = _readme_spark_command()
    data = root / data_arg
    data.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(small_shop_template, data)
    out = _sh(command, root)
    assert "Engine: Spark" in out and "This run:" in out and "Run FAILED" not in out
    # the marts are Spark's parquet tables; the warehouse file only has views of them
    assert list((data / "spark-warehouse" / "marts.db" / "fct_daily_metrics").glob("*.parquet"))
    assert list((data / "lake" / "raw" / "events").glob("*.parquet"))
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        kinds = dict(con.execute("select table_schema || '.' || table_name, table_type from information_schema.tables "
                                 "where table_schema in ('marts', 'ml')").fetchall())
    assert kinds["marts.fct_daily_metrics"] == "VIEW" and kinds["ml.demand_forecast"] == "BASE TABLE"
    assert (data / "reports" / "kpi_report_latest.html").exists()
    spark_night1 = read_marts(data / "warehouse.duckdb")
    assert sum(len(rows) for _, rows in spark_night1.values()) > 0
    assert_same_marts(duck_night1, spark_night1)

    # night 2 (new days, late files for past days, order status changes and refunds) on a real
    # standalone cluster: a Master and two one-core Workers on 127.0.0.1
    for d in (duck, data):
        _sh(f".venv/bin/nightjar simulate --out {d} --append-days 1", root)
    _sh(".venv/bin/nightjar run", root, NIGHTJAR_DATA_DIR=str(duck))
    events = tmp_path / "spark-events"
    events.mkdir()
    conf = ",".join([
        # Spark's own record of where every task ran, kept after dbt's driver exits
        f"spark.eventLog.enabled=true,spark.eventLog.dir={events.as_uri()},spark.eventLog.compress=false",
        # wait for both executors (one core each) before the first job; small executors
        "spark.cores.max=2,spark.executor.memory=512m,spark.driver.host=127.0.0.1",
    ])
    with spark_cluster(tmp_path / "cluster", workers=2) as cluster:
        out = _sh(".venv/bin/nightjar run", root, NIGHTJAR_DATA_DIR=str(data), NIGHTJAR_ENGINE="spark",
                  NIGHTJAR_SPARK_MASTER=cluster.url, NIGHTJAR_SPARK_CONF=conf)
        assert "Run FAILED" not in out and f"Engine: Spark ({cluster.url})" in out
        apps = {a["id"]: a for a in cluster.applications()}
        logs = [log for log in read_event_logs(events) if log.app_id in apps]
        assert logs, f"no event log of the master's applications {sorted(apps)} in {events}"
        workers = {w.ui_port for w in cluster.workers}
        for log in logs:
            # from each worker's status API: which executors of this application it ran
            per_worker = cluster.tasks_per_worker(log.app_id, dict(log.tasks_per_executor))
            assert set(per_worker) == workers and all(n > 0 for n in per_worker.values()), (log.app_id, per_worker)
            # the executors' log URLs (event log) name the same workers
            assert set(log.tasks_per_worker_port()) == workers
    duck_night2 = read_marts(duck / "warehouse.duckdb")
    assert duck_night2 != duck_night1
    assert_same_marts(duck_night2, read_marts(data / "warehouse.duckdb"))
