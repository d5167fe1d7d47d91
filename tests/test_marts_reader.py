"""The reader under engine=spark: DuckDB views over the parquet files of Spark tables.

One real Spark session (local[1], started the way dbt-spark's session method starts it:
``SparkSession.builder.enableHiveSupport()`` plus the profile's conf) writes tables with
``saveAsTable``; DuckDB must read them through the warehouse file, and see a rewrite after
a refresh. The same session shows that NIGHTJAR_SPARK_CONF reaches Spark through the
generated spark-defaults.conf.
"""
from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nightjar.marts_reader import VIEW_COMMENT, connect, refresh_views
from nightjar.settings import Settings, get_settings


def _settings(data_dir: Path, **extra: str) -> Settings:
    return get_settings({"NIGHTJAR_DATA_DIR": str(data_dir), "NIGHTJAR_ENGINE": "spark", **extra})


def _rows(settings: Settings, sql: str) -> list[tuple]:
    with connect(settings) as con:
        return con.execute(sql).fetchall()


def test_a_no_op_under_duckdb(tmp_path: Path) -> None:
    settings = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path)})
    table = settings.data_dir / "spark-warehouse" / "marts.db" / "t"
    table.mkdir(parents=True)
    pq.write_table(pa.table({"a": [1]}), table / "part-0.parquet")
    assert refresh_views(settings).created == []
    assert not settings.warehouse.exists()


def test_views_follow_the_parquet_folders_without_spark(tmp_path: Path) -> None:
    """Layout rules on hand-written folders (fast): partitions, unfinished writes, vanished
    and emptied tables, Nightjar's own schemas, a DuckDB-engine table of the same name."""
    settings = _settings(tmp_path)
    wh = settings.spark_warehouse
    part = wh / "marts.db" / "fct_daily"
    for day, n in (("2024-01-01", 1), ("2024-01-02", 2), ("__HIVE_DEFAULT_PARTITION__", 3)):
        (part / f"d={day}").mkdir(parents=True)
        pq.write_table(pa.table({"n": [n]}), part / f"d={day}" / "part-0.parquet")
    # an unfinished or crashed write's files are not table data
    (part / "_temporary" / "0").mkdir(parents=True)
    pq.write_table(pa.table({"n": [99]}), part / "_temporary" / "0" / "part-9.parquet")
    gone = wh / "marts.db" / "gone"
    gone.mkdir(parents=True)
    pq.write_table(pa.table({"x": ["a", "b"]}), gone / "part-0.parquet")
    (wh / "ml.db" / "churn_scores").mkdir(parents=True)
    pq.write_table(pa.table({"x": [1]}), wh / "ml.db" / "churn_scores" / "part-0.parquet")
    lake = tmp_path / "lake" / "raw" / "events"
    lake.mkdir(parents=True)
    pq.write_table(pa.table({"event_id": ["e1"]}), lake / "1.a.parquet")
    pq.write_table(pa.table({"event_id": ["e2"], "extra": [1]}), lake / "2.a.parquet")  # a later column
    with connect(settings, read_only=False) as con:
        con.execute("create schema ml; create table ml.churn_scores as select 42 as x")
        con.execute("create schema marts; create table marts.gone as select 'duckdb' as x")

    result = refresh_views(settings)
    assert sorted(result.created) == ["marts.fct_daily", "marts.gone", "raw.events"]
    assert result.skipped and "ml.churn_scores" in result.skipped[0]
    assert _rows(settings, "select d, n from marts.fct_daily order by n") == [
        (dt.date(2024, 1, 1), 1), (dt.date(2024, 1, 2), 2), (None, 3)]
    assert _rows(settings, "select * from ml.churn_scores") == [(42,)]
    assert _rows(settings, "select count(*) from marts.gone") == [(2,)]
    assert _rows(settings, "select event_id, extra from raw.events order by 1") == [("e1", None), ("e2", 1)]

    # the table empties (a partitioned table with no rows has no files): its columns stay
    for f in part.rglob("*.parquet"):
        f.unlink()
    # and another one vanishes from Spark
    for f in gone.iterdir():
        f.unlink()
    gone.rmdir()
    result = refresh_views(settings)
    assert result.dropped == ["marts.gone"] and result.empty == ["marts.fct_daily"]
    assert _rows(settings, "select column_name, data_type from information_schema.columns "
                           "where table_name = 'fct_daily' order by ordinal_position") == [("n", "BIGINT"), ("d", "DATE")]
    assert _rows(settings, "select count(*) from marts.fct_daily") == [(0,)]
    assert _rows(settings, f"select count(*) from duckdb_views() where comment = '{VIEW_COMMENT}'") == [(2,)]


@pytest.fixture(scope="module")
def spark_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, Settings]]:
    data_dir = tmp_path_factory.mktemp("spark_reader")
    settings = _settings(data_dir, NIGHTJAR_SPARK_MASTER="local[1]",
                         NIGHTJAR_SPARK_CONF="spark.nightjar.probe=from NIGHTJAR_SPARK_CONF,spark.sql.shuffle.partitions=2")
    settings.write_spark_conf()
    from pyspark.sql import SparkSession

    saved = os.environ.get("SPARK_CONF_DIR")
    os.environ["SPARK_CONF_DIR"] = settings.env()["SPARK_CONF_DIR"]
    try:
        # as dbt-spark's session method does (dbt/adapters/spark/session.py), with only the
        # master from the profile: the rest must come from spark-defaults.conf
        spark = SparkSession.builder.enableHiveSupport().config("spark.master", "local[1]").getOrCreate()
    finally:
        if saved is None:
            os.environ.pop("SPARK_CONF_DIR", None)
        else:
            os.environ["SPARK_CONF_DIR"] = saved
    try:
        yield spark, settings
    finally:
        spark.stop()


@pytest.mark.slow
@pytest.mark.spark
def test_spark_tables_are_read_through_duckdb_views(spark_session) -> None:
    spark, settings = spark_session
    # NIGHTJAR_SPARK_CONF and the pinned warehouse/metastore reached Spark through SPARK_CONF_DIR
    assert spark.conf.get("spark.nightjar.probe") == "from NIGHTJAR_SPARK_CONF"
    assert spark.conf.get("spark.sql.shuffle.partitions") == "2"
    assert spark.conf.get("spark.sql.warehouse.dir").rstrip("/").endswith(str(settings.spark_warehouse))
    assert str(settings.spark_metastore_dir) in spark.sparkContext.getConf().get("spark.hadoop.javax.jdo.option.ConnectionURL")

    spark.sql("create database if not exists marts")
    spark.sql("create database if not exists staging")
    spark.sql("""select * from values
                   (1, date'2024-01-01', timestamp'2024-01-01 10:00:00', cast(1.25 as decimal(18,2)), 0.1d, 'a'),
                   (2, date'2024-01-02', timestamp'2024-01-02 23:59:59', cast(2.50 as decimal(18,2)), 1e-300d, null)
                   as t(id, day, ts, amount, ratio, label)""").write.format("parquet").saveAsTable("marts.fct_t")
    spark.sql("select * from values (1, date'2024-01-01'), (2, date'2024-01-02') as t(n, event_date)") \
        .write.format("parquet").partitionBy("event_date").saveAsTable("staging.stg_p")
    spark.sql("select 1 as id, 'x' as s where false").write.format("parquet").saveAsTable("marts.empty_t")

    assert sorted(refresh_views(settings).created) == ["marts.empty_t", "marts.fct_t", "staging.stg_p"]
    assert _rows(settings, "select * from marts.fct_t order by id") == [
        (1, dt.date(2024, 1, 1), dt.datetime(2024, 1, 1, 10), Decimal("1.25"), 0.1, "a"),
        (2, dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 23, 59, 59), Decimal("2.50"), 1e-300, None)]
    assert _rows(settings, "select n, event_date from staging.stg_p order by n") == [
        (1, dt.date(2024, 1, 1)), (2, dt.date(2024, 1, 2))]
    assert _rows(settings, "select count(*) from marts.empty_t") == [(0,)]

    # dbt rebuilds a table: the old files are gone, the view reads the new ones after a refresh
    spark.sql("select 7 as id, 'new' as label").write.format("parquet").mode("overwrite").saveAsTable("marts.fct_t")
    spark.sql("drop table staging.stg_p")
    result = refresh_views(settings)
    assert result.dropped == ["staging.stg_p"]
    assert _rows(settings, "select * from marts.fct_t") == [(7, "new")]
    assert spark.table("marts.fct_t").count() == 1
