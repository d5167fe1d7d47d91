"""The raw layer as a parquet lake (NIGHTJAR_ENGINE=spark, nightjar.ingest.lake): the lake
holds the warehouse's raw tables, row for row, as parquet files DuckDB and Spark can read.

No JVM here: the lake is read with DuckDB's read_parquet (tests/querying.lake_connection)."""
from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from corpus import ev, j, write_corpus
from nightjar.ingest import load_events, load_shop
from nightjar.ingest.empty_tables import SHOP_PRIMARY_KEYS
from nightjar.settings import get_settings
from querying import lake_connection, query, raw_query
from segment_messages import export_native_files
from shop_fixtures import T0, add_orders, build_shop, orders

EVENT_TABLES = ["events", "events_rejected", "events_load_log"]
SHOP_TABLES = ["customers", "products", "orders", "order_items"]
# per-load columns: the wall clock and dlt's load ids differ between two loads of the same data
PER_LOAD = {"_loaded_at", "load_id", "_dlt_load_id", "_dlt_id"}


def _settings(data_dir: Path, engine: str):
    return get_settings({"NIGHTJAR_DATA_DIR": str(data_dir), "NIGHTJAR_ENGINE": engine})


def _night(settings) -> tuple[dict, dict]:
    return load_events(settings), load_shop(settings)


def _compare(duck, spark) -> dict[str, int]:
    """Assert that every raw table of the lake equals the warehouse's (shop tables: the
    latest version per primary key) in column names, types and rows; returns row counts."""
    con = lake_connection(spark.lake_url)
    try:
        con.execute(f"ATTACH '{duck.warehouse}' AS w (READ_ONLY)")
        counts = {}
        for table in EVENT_TABLES + SHOP_TABLES:
            w_cols = con.execute(f"select column_name, column_type from (describe w.raw.{table})").fetchall()
            l_cols = con.execute(f"select column_name, column_type from (describe raw.{table})").fetchall()
            # the lake has no JSON type (neither has parquet or Spark): JSON text is a string
            assert [(c, "VARCHAR" if t == "JSON" else t) for c, t in w_cols] == l_cols, table
            cols = ", ".join(f'"{c}"' for c, _ in w_cols if c not in PER_LOAD)
            lake = f"select {cols} from raw.{table}"
            if table in SHOP_TABLES:  # append-only versions: the latest per key
                keys = ", ".join(SHOP_PRIMARY_KEYS[table])
                lake = (f"select {cols} from raw.{table} qualify row_number() over "
                        f"(partition by {keys} order by _dlt_load_id desc) = 1")
            wh = f"select {cols} from w.raw.{table}"
            for a, b in ((wh, lake), (lake, wh)):
                extra = con.execute(f"select count(*) from ({a} except all {b})").fetchone()[0]
                assert extra == 0, f"{table}: {extra} rows of one side missing from the other"
            counts[table] = con.execute(f"select count(*) from ({wh})").fetchone()[0]
            assert counts[table] == con.execute(f"select count(*) from ({lake})").fetchone()[0], table
        return counts
    finally:
        con.close()


def test_the_lake_equals_the_warehouse_over_two_nights(tmp_path):
    """The same landing files (simulated shop + the malformed-line corpus + Segment exports)
    and the same SQLite shop, loaded once with engine=duckdb and once with engine=spark."""
    from nightjar.simulator import append_days, simulate

    template = tmp_path / "template"
    simulate(template, start=date(2025, 3, 1), days=6, customers=60, seed=11)
    write_corpus(template / "landing" / "events", day="2025-03-02")
    assert export_native_files(template / "landing" / "events", template / "landing" / "segment-logs",
                               every=4, move=True) > 3
    duck_dir, spark_dir = tmp_path / "duck", tmp_path / "spark"
    shutil.copytree(template, duck_dir, symlinks=True)
    shutil.copytree(template, spark_dir, symlinks=True)
    duck, spark = _settings(duck_dir, "duckdb"), _settings(spark_dir, "spark")

    (d_ev, d_shop), (s_ev, s_shop) = _night(duck), _night(spark)
    for key in ("files_loaded", "files_failed", "lines_read", "rows_loaded", "rows_rejected"):
        assert d_ev[key] == s_ev[key], key
    assert d_shop["rows"] == s_shop["rows"]
    assert not spark.warehouse.exists()  # the lake path never touches the warehouse
    first = _compare(duck, spark)
    assert first["events_rejected"] > 50 and first["orders"] > 0
    assert raw_query(spark, "select count(*) from raw.events_load_log where _file like 'segment-logs/%'")[0][0] > 3

    # a second night: new and late files, new orders, status changes and refunds
    append_days(duck_dir, 2)
    append_days(spark_dir, 2)
    (d_ev, d_shop), (s_ev, s_shop) = _night(duck), _night(spark)
    assert d_ev["files_loaded"] == s_ev["files_loaded"] > 0
    assert d_shop["rows"] == s_shop["rows"] and s_shop["rows"]["orders"] > 0
    second = _compare(duck, spark)
    assert second["events"] > first["events"]
    # updated orders are new versions in the lake, merged in place in the warehouse
    versions = raw_query(spark, "select count(*) - count(distinct order_id) from raw.orders")[0][0]
    assert versions > 0
    assert query(duck.warehouse, "select count(*) - count(distinct order_id) from raw.orders")[0][0] == 0

    # a third run of the same files loads nothing on either side
    for s in (duck, spark):
        ev, shop = _night(s)
        assert ev["files_loaded"] == 0 and shop["rows_total"] == 0
    assert _compare(duck, spark) == second


def test_lake_layout_and_parquet_schema(tmp_path):
    """``<lake>/raw/<table>/<load_id>.<file_id>.parquet``; dlt's own tables beside them."""
    settings = _settings(tmp_path / "data", "spark")
    write_corpus(settings.events_dir)
    raw = Path(settings.lake_url) / "raw"
    raw.mkdir(parents=True)  # a raw folder made before dlt's first load (e.g. by Spark) is taken over
    summary = load_events(settings)
    assert {p.name for p in raw.iterdir() if p.is_dir()} >= {
        *EVENT_TABLES, "_dlt_loads", "_dlt_pipeline_state", "_dlt_version"}
    (load,) = [p.name.split("__")[1].removesuffix(".jsonl") for p in (raw / "_dlt_loads").iterdir()]
    for table in EVENT_TABLES:
        files = sorted((raw / table).iterdir())
        assert files and all(f.name.startswith(f"{load}.") and f.suffix == ".parquet" for f in files), files
    schema = pq.read_schema(sorted((raw / "events").glob("*.parquet"))[-1])
    assert [(f.name, str(f.type)) for f in schema] == [
        ("event_id", "string"), ("event_name", "string"), ("timestamp", "timestamp[us, tz=UTC]"),
        ("received_at", "timestamp[us, tz=UTC]"), ("anonymous_id", "string"), ("user_id", "string"),
        ("session_id", "string"), ("properties", "string"), ("context", "string"), ("_file", "string"),
        ("_line", "int64"), ("_loaded_at", "timestamp[us, tz=UTC]")]
    # no file is half-written or hidden in the lake after a run
    assert not [p for p in raw.rglob(".*") if p.name != "init"]
    assert raw_query(settings, "select count(*) from raw.events")[0][0] == summary["rows_loaded"]


def test_shop_versions_are_appended_and_the_latest_is_the_merged_row(tmp_path):
    duck = _settings(tmp_path / "duck", "duckdb")
    spark = _settings(tmp_path / "spark", "spark")
    engines = {}
    for s in (duck, spark):
        s.data_dir.mkdir(parents=True)
        engines[s.engine] = sa.create_engine(s.shop_db_url)
        build_shop(engines[s.engine])
        assert load_shop(s)["rows"] == {"customers": 20, "products": 8, "orders": 60, "order_items": 120}
        assert load_shop(s)["rows_total"] == 0
        with engines[s.engine].begin() as con:  # a refund of an old order and a new order
            con.execute(orders.update().where(orders.c.order_id == "o_00000003")
                        .values(status="refunded", updated_at=T0 + timedelta(days=120)))
            add_orders(con, [1000])
            con.execute(orders.update().where(orders.c.order_id == "o_00001000")
                        .values(updated_at=T0 + timedelta(days=120)))
        assert load_shop(s)["rows"]["orders"] == 2
        engines[s.engine].dispose()
    versions = raw_query(spark, "select status from raw.orders where order_id = 'o_00000003' order by _dlt_load_id")
    assert len(versions) == 2 and versions[-1] == ("refunded",) and versions[0] != ("refunded",)
    assert raw_query(spark, "select count(*), count(distinct order_id) from raw.orders")[0] == (62, 61)
    assert raw_query(spark, "select count(*) from raw.order_items")[0][0] == 123  # order 3's item again
    # the shop tables in the lake, latest version per key, equal the warehouse's merged tables
    con = lake_connection(spark.lake_url)
    try:
        con.execute(f"ATTACH '{duck.warehouse}' AS w (READ_ONLY)")
        for table in SHOP_TABLES:
            keys = ", ".join(SHOP_PRIMARY_KEYS[table])
            cols = [c for (c,) in con.execute(f"select column_name from (describe w.raw.{table})").fetchall()
                    if c not in PER_LOAD]
            sel = ", ".join(cols)
            latest = (f"select {sel} from raw.{table} qualify row_number() over "
                      f"(partition by {keys} order by _dlt_load_id desc) = 1")
            assert con.execute(f"select count(*) from (({latest}) except all (select {sel} from w.raw.{table}))"
                               ).fetchone() == (0,), table
            assert con.execute(f"select count(*) from ({latest})").fetchone() == \
                con.execute(f"select count(*) from w.raw.{table}").fetchone()
    finally:
        con.close()
    # losing the local dlt working dir reloads nothing: the cursors live in the lake
    shutil.rmtree(spark.dlt_pipelines_dir)
    assert load_shop(spark)["rows_total"] == 0


def _describe(settings, table: str) -> list[tuple[str, str]]:
    return [(c, t) for c, t in raw_query(settings, f"select column_name, column_type from (describe raw.{table})")]


def test_events_only_and_orders_only_shops_have_every_raw_table(tmp_path):
    """The tables of the source a shop lacks exist in the lake as empty parquet with the full
    schema (the columns a real load writes); a later real load appends to them."""
    duck = _settings(tmp_path / "duck", "duckdb")
    spark = _settings(tmp_path / "spark", "spark")
    for s in (duck, spark):
        s.data_dir.mkdir(parents=True)
        shop = load_shop(s)  # events-only: no shop database
        assert shop["shop_db"] is False and sorted(shop["empty_tables_created"]) == sorted(SHOP_TABLES)
        events = load_events(s)  # orders-only: no landing folder
        assert sorted(events["empty_tables_created"]) == sorted(EVENT_TABLES)
        assert load_events(s)["empty_tables_created"] == [] and load_shop(s)["empty_tables_created"] == []
    for table in EVENT_TABLES + SHOP_TABLES:
        assert raw_query(spark, f"select count(*) from raw.{table}") == [(0,)], table
        want = [(c, "VARCHAR" if t == "JSON" else t) for c, t in _describe(duck, table)]
        assert _describe(spark, table) == want, table
    # the shop and the landing files appear later: the first real loads add to the empty tables
    engine = sa.create_engine(spark.shop_db_url)
    build_shop(engine)
    engine.dispose()
    write_corpus(spark.events_dir)
    assert load_shop(spark)["rows"]["orders"] == 60 and load_events(spark)["rows_loaded"] > 0
    assert raw_query(spark, "select count(*) from raw.orders")[0][0] == 60
    assert _describe(spark, "orders")[:3] == [("order_id", "VARCHAR"), ("customer_id", "VARCHAR"),
                                             ("status", "VARCHAR")]


def test_the_lake_can_be_any_fsspec_url(tmp_path):
    """NIGHTJAR_LAKE_URL is handed to dlt as it is: a file:// URL of a folder outside the data
    dir, and fsspec's in-memory filesystem, which stands in for an object store (no local
    paths, no renames: files are written and read through fsspec)."""
    import fsspec

    lake = tmp_path / "elsewhere" / "lake"
    bucket = f"/nightjar-test-{tmp_path.name}"
    for url in (lake.as_uri(), f"memory://{bucket}/lake"):
        settings = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path / url.split(":")[0]), "NIGHTJAR_ENGINE": "spark",
                                 "NIGHTJAR_LAKE_URL": url})
        expected = write_corpus(settings.events_dir)
        first = load_events(settings)
        assert first["rows_loaded"] > 0 and first["lines_read"] == first["rows_loaded"] + first["rows_rejected"]
        assert len(first["files"]) == len(expected) and all("lines_read" in f for f in first["files"])
        shutil.rmtree(settings.dlt_pipelines_dir)  # the state comes back from the lake
        assert load_events(settings)["files_loaded"] == 0
    con = duckdb.connect()
    try:
        n = con.execute(f"select count(*) from read_parquet('{lake}/raw/events/*.parquet')").fetchone()[0]
    finally:
        con.close()
    assert n == first["rows_loaded"]
    fs = fsspec.filesystem("memory")
    try:
        rows = sum(pq.read_metadata(fs.open(p)).num_rows for p in fs.glob(f"{bucket}/lake/raw/events/*.parquet"))
        assert rows == first["rows_loaded"]
    finally:
        fs.rm(bucket, recursive=True)


def _events_job_run_by_hand(settings) -> str:
    """An interrupted run, reproduced with dlt itself: a package extracted and normalized,
    whose events job then runs as the killed loader ran it (every file in the lake, the job
    not marked complete, no state written). Returns the package's load id."""
    import threading

    from nightjar.ingest.discover import EventsRunStats, events_source
    from nightjar.ingest.lake import LakeEventsJob
    from nightjar.ingest.pipeline import EVENTS_PIPELINE, make_pipeline

    pipeline = make_pipeline(EVENTS_PIPELINE, settings)
    pipeline.sync_destination()  # the loaded-files state, as `run` restores it
    pipeline.extract(events_source(settings.events_dir, EventsRunStats()), loader_file_format="parquet")
    pipeline.normalize()
    (load_id,) = pipeline.list_normalized_load_packages()
    package = settings.dlt_pipelines_dir / EVENTS_PIPELINE / "load" / "normalized" / load_id
    (manifest,) = package.glob("new_jobs/events.*.jsonl")
    done = threading.BoundedSemaphore(1)
    done.acquire()
    with pipeline.destination_client() as client:
        job = LakeEventsJob(str(manifest))
        job.set_run_vars(load_id, pipeline.default_schema, client.prepare_load_table("events"))
        job.run_managed(client, done)
    assert job.state() == "completed", job.exception()
    return load_id


def test_a_lake_job_replayed_after_a_crash_is_not_counted_twice(tmp_path):
    """A kill after the events job wrote its files but before dlt marked it complete makes
    the next run run that job again: it replaces its own files, so every line is loaded or
    rejected exactly once, and the file is recorded as loaded once."""
    settings = _settings(tmp_path / "data", "spark")
    day = settings.events_dir / "dt=2025-01-01"
    day.mkdir(parents=True)
    (day / "a.jsonl").write_text("\n".join(j(ev(i)) for i in range(5)) + "\n")
    load_events(settings)
    (day / "b.jsonl").write_text("\n".join([*(j(ev(f"b{i}")) for i in range(4)), "{broken"]) + "\n")
    load_id = _events_job_run_by_hand(settings)
    assert raw_query(settings, "select count(*) from raw.events where _file like '%b.jsonl'") == [(4,)]
    written = sorted(p.name for p in (Path(settings.lake_url) / "raw").rglob(f"{load_id}.*.parquet"))
    assert len(written) == 3  # events, events_rejected, events_load_log

    again = load_events(settings)  # finishes the pending package, then looks for new files
    assert again["files_loaded"] == 0 and again["files_already_loaded"] == 2
    per_file = raw_query(settings, """
        select l._file, l.lines_read,
               (select count(*) from raw.events e where e._file = l._file),
               (select count(*) from raw.events_rejected r where r._file = l._file)
        from raw.events_load_log l order by 1""")
    assert per_file == [("dt=2025-01-01/a.jsonl", 5, 5, 0), ("dt=2025-01-01/b.jsonl", 5, 4, 1)]
    assert set(written) <= {p.name for p in (Path(settings.lake_url) / "raw").rglob(f"{load_id}.*.parquet")}


def test_a_big_job_is_split_into_files_and_a_replay_replaces_all_of_them(tmp_path, monkeypatch):
    """The events job writes a table in files of at most ROWS_PER_FILE rows (``<file_id>``,
    ``<file_id>_1``, ...); a replayed job removes every file of the earlier attempt."""
    import nightjar.ingest.lake as lake

    monkeypatch.setattr(lake, "ROWS_PER_FILE", 40)  # small numbers stand in for millions of rows
    monkeypatch.setattr(lake, "_READ_BATCH", 30)
    settings = _settings(tmp_path / "data", "spark")
    load_events(settings)  # no landing files yet: the lake is initialised, its tables empty
    raw = Path(settings.lake_url) / "raw"
    expected = write_corpus(settings.events_dir)
    load_id = _events_job_run_by_hand(settings)
    first_attempt = sorted(p.name for p in (raw / "events").glob(f"{load_id}.*.parquet"))
    assert len(first_attempt) >= 4
    # a leftover of a write that was killed half-way: hidden, and removed by the replay
    (raw / "events" / f".{first_attempt[0]}.tmp").write_bytes(b"half a file")
    load_events(settings)  # finishes the pending package: the job runs again
    files = sorted(p.name for p in (raw / "events").glob(f"{load_id}.*.parquet"))
    assert set(first_attempt) <= set(files)  # the same names, written again
    assert not list((raw / "events").glob(".*"))
    stems = {f.split(".")[2].split("_")[0] for f in files}
    assert len(stems) == 2  # the job's split files, and the empty file of the table hints
    n, distinct = raw_query(settings, "select count(*), count(distinct (_file, _line)) from raw.events")[0]
    assert n == distinct == sum(pq.read_metadata(raw / "events" / f).num_rows for f in files)
    logged = raw_query(settings, "select sum(lines_read), count(*) from raw.events_load_log")[0]
    rejected = raw_query(settings, "select count(*) from raw.events_rejected")[0][0]
    assert logged == (n + rejected, len(expected))
