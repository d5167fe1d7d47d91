"""Settings: one place, env vars with defaults (DESIGN.md §4)."""
from pathlib import Path

import pytest

from nightjar.settings import DEFAULT_ALERTS_FILE, get_settings


def test_defaults_derive_every_path_from_the_data_dir(tmp_path: Path) -> None:
    s = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path)})
    assert s.data_dir == tmp_path
    assert s.warehouse == tmp_path / "warehouse.duckdb"
    assert s.shop_db_url == f"sqlite:///{tmp_path / 'shop.sqlite'}"
    assert s.events_dir == tmp_path / "landing" / "events"
    assert s.alerts_file == DEFAULT_ALERTS_FILE


def test_explicit_variables_override_their_part_only(tmp_path: Path) -> None:
    wh = tmp_path / "elsewhere" / "wh.duckdb"
    s = get_settings(
        {
            "NIGHTJAR_DATA_DIR": str(tmp_path / "d"),
            "NIGHTJAR_WAREHOUSE": str(wh),
            "NIGHTJAR_SHOP_DB_URL": "postgresql://postgres@127.0.0.1:5432/test",
        }
    )
    assert s.warehouse == wh
    assert s.shop_db_url.startswith("postgresql://")
    assert s.landing_dir == tmp_path / "d" / "landing"
    # Subprocesses (dbt, dagster) get the same resolved values.
    assert s.env()["NIGHTJAR_WAREHOUSE"] == str(wh)


def test_relative_data_dir_is_resolved_against_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert get_settings({"NIGHTJAR_DATA_DIR": "rel"}).data_dir == tmp_path / "rel"
    assert get_settings({}).data_dir == tmp_path / "data"


def test_duckdb_limits_are_settings_and_reach_subprocesses(tmp_path: Path) -> None:
    s = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path)})
    assert s.duckdb_config() == {"temp_directory": str(tmp_path / "warehouse.duckdb.tmp")}
    s = get_settings(
        {
            "NIGHTJAR_DATA_DIR": str(tmp_path),
            "NIGHTJAR_DUCKDB_MEMORY_LIMIT": "2GB",
            "NIGHTJAR_DUCKDB_TEMP_DIRECTORY": str(tmp_path / "spill"),
            "NIGHTJAR_DUCKDB_THREADS": "2",
        }
    )
    assert s.duckdb_config() == {"temp_directory": str(tmp_path / "spill"), "memory_limit": "2GB", "threads": 2}
    assert s.env()["NIGHTJAR_DUCKDB_MEMORY_LIMIT"] == "2GB"
    assert get_settings(s.env()).duckdb_config() == s.duckdb_config()


def test_future_skew_hours_setting(tmp_path: Path) -> None:
    assert get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path)}).future_skew_hours == 24.0
    s = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path), "NIGHTJAR_FUTURE_SKEW_HOURS": "1.5"})
    assert s.future_skew_hours == 1.5
    assert get_settings(s.env()).future_skew_hours == 1.5  # reaches subprocesses
    for bad in ("-1", "soon", "nan", "inf"):
        with pytest.raises(ValueError, match="NIGHTJAR_FUTURE_SKEW_HOURS"):
            get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path), "NIGHTJAR_FUTURE_SKEW_HOURS": bad})


def test_file_caps_settings(tmp_path: Path) -> None:
    s = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path)})
    assert (s.max_file_bytes, s.max_file_lines, s.max_line_bytes) == (2 * 1024**3, 10_000_000, 1024**2)
    s = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path), "NIGHTJAR_MAX_FILE_BYTES": "1000",
                      "NIGHTJAR_MAX_FILE_LINES": "10", "NIGHTJAR_MAX_LINE_BYTES": "100"})
    assert get_settings(s.env()).max_file_bytes == 1000 and get_settings(s.env()).max_line_bytes == 100
    with pytest.raises(ValueError, match="NIGHTJAR_MAX_FILE_LINES"):
        get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path), "NIGHTJAR_MAX_FILE_LINES": "0"})


def test_earliest_event_date_setting(tmp_path: Path) -> None:
    from datetime import date, datetime, timezone

    s = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path)})
    assert s.earliest_event_date == date(2000, 1, 1)
    s = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path), "NIGHTJAR_EARLIEST_EVENT_DATE": "1997-01-01"})
    assert s.earliest_event_time == datetime(1997, 1, 1, tzinfo=timezone.utc)
    assert get_settings(s.env()).earliest_event_date == date(1997, 1, 1)  # reaches subprocesses
    with pytest.raises(ValueError, match="NIGHTJAR_EARLIEST_EVENT_DATE"):
        get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path), "NIGHTJAR_EARLIEST_EVENT_DATE": "1997/01/01"})


def test_a_shop_database_is_absent_only_when_unset_and_no_shop_sqlite(tmp_path: Path) -> None:
    assert not get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path)}).has_shop_db
    # the resolved settings handed to subprocesses carry the default URL: still absent
    assert not get_settings(get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path)}).env()).has_shop_db
    assert get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path),
                         "NIGHTJAR_SHOP_DB_URL": "postgresql://u@h/shop"}).has_shop_db
    (tmp_path / "shop.sqlite").touch()
    assert get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path)}).has_shop_db


def test_churn_horizon_settings_reach_subprocesses_and_bad_values_are_refused(tmp_path: Path) -> None:
    default = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path)})
    assert (default.churn_horizon_days, default.churn_check_horizon) == (None, True)
    assert "NIGHTJAR_CHURN_HORIZON_DAYS" not in default.env()
    s = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path), "NIGHTJAR_CHURN_HORIZON_DAYS": "90",
                      "NIGHTJAR_CHURN_CHECK_HORIZON": "false"})
    assert (s.churn_horizon_days, s.churn_check_horizon) == (90, False)
    # a subprocess given env() resolves the same settings
    again = get_settings({**s.env()})
    assert (again.churn_horizon_days, again.churn_check_horizon) == (90, False)
    with pytest.raises(ValueError, match="NIGHTJAR_CHURN_CHECK_HORIZON"):
        get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path), "NIGHTJAR_CHURN_CHECK_HORIZON": "maybe"})
    with pytest.raises(ValueError, match="NIGHTJAR_CHURN_HORIZON_DAYS"):
        get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path), "NIGHTJAR_CHURN_HORIZON_DAYS": "-5"})


def test_engine_settings_default_to_duckdb_and_reach_subprocesses(tmp_path: Path) -> None:
    s = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path)})
    assert s.engine == "duckdb"
    assert s.lake_url == str(tmp_path / "lake")
    assert s.spark_warehouse == tmp_path / "spark-warehouse"
    conf = s.spark_session_conf()
    assert conf["spark.master"] == "local[*]"
    assert conf["spark.sql.warehouse.dir"] == str(tmp_path / "spark-warehouse")
    # one pinned metastore for every process
    assert str(tmp_path / "spark-warehouse" / "metastore_db") in conf["spark.hadoop.javax.jdo.option.ConnectionURL"]

    s = get_settings({
        "NIGHTJAR_DATA_DIR": str(tmp_path), "NIGHTJAR_ENGINE": "Spark",
        "NIGHTJAR_LAKE_URL": "s3://bucket/lake/", "NIGHTJAR_SPARK_MASTER": "spark://10.0.0.1:7077",
        "NIGHTJAR_SPARK_CONF": "spark.executor.memory=4g, spark.sql.shuffle.partitions=8",
    })
    assert (s.engine, s.lake_url) == ("spark", "s3://bucket/lake")
    conf = s.spark_session_conf()
    assert conf["spark.master"] == "spark://10.0.0.1:7077"
    assert conf["spark.executor.memory"] == "4g" and conf["spark.sql.shuffle.partitions"] == "8"
    child = get_settings(s.env())  # subprocesses see the same engine
    assert (child.engine, child.lake_url, child.spark_master, child.spark_warehouse, child.spark_conf) == (
        s.engine, s.lake_url, s.spark_master, s.spark_warehouse, s.spark_conf)
    assert get_settings({"NIGHTJAR_SPARK_CONF": '{"spark.sql.shuffle.partitions": 4}'}).spark_conf == (
        ("spark.sql.shuffle.partitions", "4"),)
    jars = get_settings({"NIGHTJAR_SPARK_CONF": '{"spark.jars": "/a.jar,/b.jar"}'})
    assert get_settings(jars.env()).spark_conf == (("spark.jars", "/a.jar,/b.jar"),)


@pytest.mark.parametrize("env, message", [
    ({"NIGHTJAR_ENGINE": "snowflake"}, "NIGHTJAR_ENGINE must be one of duckdb, spark"),
    ({"NIGHTJAR_SPARK_CONF": "spark.executor.memory"}, "key=value pairs"),
    ({"NIGHTJAR_SPARK_CONF": "{not json"}, "not valid JSON"),
])
def test_bad_engine_settings_are_refused(env: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_settings(env)


def test_spark_conf_reaches_spark_defaults_conf(tmp_path) -> None:
    """NIGHTJAR_SPARK_CONF -> <data dir>/artifacts/spark-conf/spark-defaults.conf, the
    SPARK_CONF_DIR of Spark processes (tests/test_marts_reader.py checks a real session)."""
    s = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path), "NIGHTJAR_ENGINE": "spark",
                      "NIGHTJAR_SPARK_CONF": '{"spark.executor.memory": "4g", "spark.x.path": "C:\\\\tmp"}'})
    folder = s.write_spark_conf()
    assert folder == tmp_path / "artifacts" / "spark-conf" and s.env()["SPARK_CONF_DIR"] == str(folder)
    lines = (folder / "spark-defaults.conf").read_text().splitlines()
    assert "spark.executor.memory 4g" in lines
    assert "spark.x.path C:\\\\tmp" in lines  # a backslash escapes in Java properties
    assert f"spark.sql.warehouse.dir {tmp_path / 'spark-warehouse'}" in lines
    assert any(line.startswith("spark.driver.extraJavaOptions -Dderby.stream.error.file=") for line in lines)
    assert "SPARK_CONF_DIR" not in get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path)}).env()
    bad = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path), "NIGHTJAR_SPARK_CONF": '{"spark.a": "x\\ny"}'})
    with pytest.raises(ValueError, match="one line"):
        bad.write_spark_conf()
