"""Guarantee, for the parquet lake (NIGHTJAR_ENGINE=spark): a SIGKILL at any point of
ingestion, followed by a normal run, leaves exactly the raw tables of an uninterrupted run
(nothing lost, no file loaded twice, no duplicate rows), with native and Segment files.

The lake-side twin of test_crash_safety's ingestion test; kill points are drawn with a
seeded RNG within the measured duration of an uninterrupted run."""
from __future__ import annotations

import random
import time
from datetime import date
from pathlib import Path

import pytest

from querying import lake_connection

from .helpers import LOAD_TIME_COLUMNS, copy_shop, diff_hashes, ingest_popen, kill_group, run_to_end

SEED = 20251207
TRIALS = 4
SPARK = {"NIGHTJAR_ENGINE": "spark"}


def lake_hashes(data_dir: Path) -> dict[str, tuple[int, int]]:
    """``{table: (rows, order-independent hash of the rows)}`` of every raw table in the lake
    (every stored version of the shop tables), leaving out the per-load columns."""
    con = lake_connection(data_dir / "lake")
    try:
        out = {}
        for (table,) in con.execute("select table_name from information_schema.tables "
                                    "where table_schema = 'raw' order by 1").fetchall():
            cols = [c for (c,) in con.execute(f"select column_name from (describe raw.{table})").fetchall()
                    if c not in LOAD_TIME_COLUMNS]
            row = f"row({', '.join(repr(c).replace(chr(39), chr(34)) for c in cols)})"
            n, h = con.execute(f"select count(*), coalesce(sum(hash({row})::hugeint), 0) from raw.{table}").fetchone()
            out[table] = (int(n), int(h))
        return out
    finally:
        con.close()


@pytest.fixture(scope="module")
def lake_template(tmp_path_factory) -> Path:
    from nightjar.simulator import SimConfig, simulate
    from segment_messages import export_native_files

    template = tmp_path_factory.mktemp("lake_night") / "template"
    simulate(template, start=date(2025, 3, 1), days=12, customers=80, seed=5,
             config=SimConfig(late_file_rate=0.25, duplicate_rate=0.03))
    assert export_native_files(template / "landing" / "events", template / "landing" / "segment-logs",
                               every=3, move=True) > 5
    return template


@pytest.mark.slow
def test_lake_ingestion_killed_at_random_points_then_rerun_equals_uninterrupted(lake_template, tmp_path):
    rng = random.Random(SEED)
    ref = copy_shop(lake_template, tmp_path / "ref")
    t0 = time.monotonic()
    run_to_end(ingest_popen(ref, **SPARK))
    duration = time.monotonic() - t0
    want = lake_hashes(ref)
    assert not (ref / "warehouse.duckdb").exists()
    assert {"events", "events_rejected", "events_load_log", "orders", "order_items"} <= set(want)
    assert want["events"][0] > 1000
    for trial in range(TRIALS):
        work = copy_shop(lake_template, tmp_path / f"trial{trial}")
        delay = rng.uniform(0.1, duration)
        proc = ingest_popen(work, **SPARK)
        time.sleep(delay)
        kill_group(proc)
        run_to_end(ingest_popen(work, **SPARK))
        got = lake_hashes(work)
        assert diff_hashes(want, got) == {}, f"trial {trial} (killed after {delay:.2f}s of {duration:.2f}s)"
        con = lake_connection(work / "lake")
        try:  # each file exactly once in the load log
            assert con.execute("select count(*) from (select _file from raw.events_load_log "
                               "group by 1 having count(*) > 1)").fetchone()[0] == 0
        finally:
            con.close()
        # no half-written file is left behind
        assert not [p for p in (work / "lake").rglob(".*") if p.name.endswith(".tmp")]
    print(f"lake ingest duration {duration:.1f}s")
