"""Guarantee: ten nightly increments (late files, duplicates, order updates, refunds) give the
same marts as one `dbt build --full-refresh` over the same raw data. Each night runs dbt
with the nightly run's own arguments (``nightly_dbt_args``: incremental models, data tests
on the night's loads only)."""
from __future__ import annotations

import pytest

from nightjar.dbt_args import nightly_dbt_args

from .helpers import (connect_ro, copy_shop, copy_warehouse, dbt_inprocess, ingest, list_tables, query,
                      _column_exprs)

NIGHTS = 10


def _except_all(a_wh, b_wh, schema: str, table: str) -> tuple[int, int, int, int]:
    """(rows in a, rows in b, rows of a not in b, rows of b not in a), bag semantics."""
    con = connect_ro(a_wh)
    try:
        con.execute(f"attach '{b_wh}' as other (read_only)")
        cols = ", ".join(_column_exprs(con, schema, table, exclude=frozenset()))
        a = f'select {cols} from "{schema}"."{table}"'
        b = f'select {cols} from other."{schema}"."{table}"'
        return con.execute(f"select (select count(*) from ({a})), (select count(*) from ({b})), "
                           f"(select count(*) from ({a} except all {b})), "
                           f"(select count(*) from ({b} except all {a}))").fetchone()
    finally:
        con.close()


@pytest.mark.slow
def test_ten_nightly_increments_equal_a_full_refresh(night, tmp_path):
    from nightjar.simulator import append_days

    work = copy_shop(night.template, tmp_path / "data")
    copy_warehouse(night.reference, work / "warehouse.duckdb")  # night 0 = the fixture's night
    wh = work / "warehouse.duckdb"
    seen = {"late_files": 0, "refunds_or_updates": 0}
    for n in range(1, NIGHTS + 1):
        before = query(wh, "select count(*) from raw.orders")[0][0]
        stats = append_days(work, 1)
        events, shop = ingest(work)
        assert events["lines_read"] == events["rows_loaded"] + events["rows_rejected"]
        args = nightly_dbt_args(wh)
        assert "--event-time-start" in args
        out = dbt_inprocess(wh, *args, work_dir=tmp_path / "dbt")
        assert out.success, f"night {n}: {out.failures()}"
        new_day = f"dt={stats['end']}"
        seen["late_files"] += sum(1 for f in events["files"] if not f["file"].startswith(new_day))
        seen["refunds_or_updates"] += shop["rows"]["orders"] - (query(wh, "select count(*) from raw.orders")[0][0] - before)
    # the increments really exercised late data and updates of old orders
    assert seen["late_files"] > 0 and seen["refunds_or_updates"] > 0, seen
    dup = query(wh, "select count(*) - count(distinct event_id) from raw.events")[0][0]
    assert dup > 0  # retried deliveries are in raw

    full = copy_warehouse(wh, tmp_path / "full" / "warehouse.duckdb")
    out = dbt_inprocess(full, "build", "--full-refresh", work_dir=tmp_path / "dbt_full")
    assert out.success, out.failures()

    con = connect_ro(wh)
    try:
        models = [(s, t) for s, t in list_tables(con, ("staging", "intermediate", "marts"))]
    finally:
        con.close()
    assert {t for s, t in models if s == "marts"} >= {"fct_sessions", "fct_daily_metrics", "fct_retention_daily",
                                                     "fct_retention_weekly", "dim_customers", "fct_funnel_daily",
                                                     "fct_attribution", "fct_channel_daily"}
    diffs = {}
    for schema, table in models:
        na, nb, a_not_b, b_not_a = _except_all(wh, full, schema, table)
        if (na != nb) or a_not_b or b_not_a:
            diffs[f"{schema}.{table}"] = dict(incremental=na, full_refresh=nb, only_incremental=a_not_b,
                                              only_full_refresh=b_not_a)
    assert diffs == {}
