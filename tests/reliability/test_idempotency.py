"""Guarantee: running the same night twice changes nothing (every table, every row)."""
from __future__ import annotations

from .helpers import copy_shop, copy_warehouse, dbt_inprocess, diff_hashes, ingest, query, table_hashes


def test_same_night_twice_leaves_every_table_identical(night, tmp_path):
    work = copy_shop(night.template, tmp_path / "data")
    copy_warehouse(night.reference, work / "warehouse.duckdb")
    wh = work / "warehouse.duckdb"
    loads_before = query(wh, "select count(*) from raw._dlt_loads")[0][0]

    events, shop = ingest(work)  # the same night again: nothing new to load
    assert (events["files_loaded"], events["lines_read"], events["rows_loaded"]) == (0, 0, 0)
    assert events["files_already_loaded"] > 0
    assert shop["rows_total"] == 0
    out = dbt_inprocess(wh, "build", work_dir=tmp_path / "dbt")
    assert out.success, out.failures()

    # Content hashes of raw/staging/intermediate/marts, load-time columns excluded
    # (helpers.LOAD_TIME_COLUMNS: _loaded_at, _dlt_load_id, ... record *when* a row was written;
    # here nothing was re-written, so even they would match, but the comparison is the same
    # one the crash tests use).
    assert diff_hashes(night.hashes, table_hashes(wh)) == {}
    # ... and strictly: even the load-time columns are untouched (no row was rewritten).
    assert diff_hashes(table_hashes(night.reference, exclude=frozenset()), table_hashes(wh, exclude=frozenset())) == {}
    # dlt recorded the (empty) runs, nothing else
    assert query(wh, "select count(*) from raw._dlt_loads")[0][0] >= loads_before
