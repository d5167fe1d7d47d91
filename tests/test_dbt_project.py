"""The dbt project through the real dbt CLI, on the tiny hand-checked raw layer of
``tests/dbt_fixtures.py``.

* values of the marts after the first build, worked out by hand (see dbt_fixtures' docstring);
* the dbt unit tests (``dbt test --select test_type:unit``);
* incremental == full refresh: after the second night's load (new day, late events up to
  3 days old, retried duplicates, an anonymous_id that gets identified, a refund of an old
  order) the nightly ``dbt build`` (the arguments the Dagster nightly run passes,
  ``nightly_dbt_args``) gives exactly the tables of a ``--full-refresh`` build; and again
  after a third night (a device that changes hands, a late file that moves a visitor to an
  earlier cohort) followed by a night without new events;
* the incremental fct_attribution over two other nights (a late session inside an order's
  lookback window, a device identified as a customer, orders cancelled, quarantined and
  new): credit moves where it should and equals a full refresh.

Each module run uses its own warehouse files, target and log paths (parallel-safe).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dbt_fixtures import (  # noqa: E402
    append_attribution_night, append_increment, append_night3, build_base, table_diff)

from nightjar.dbt_args import nightly_dbt_args  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO / "dbt_project"
_VENV_DBT = REPO / ".venv" / "bin" / "dbt"
DBT = str(_VENV_DBT) if _VENV_DBT.exists() else (shutil.which("dbt") or "dbt")

D1, D2, D3, D4, D5 = (dt.date(2025, 1, d) for d in (6, 7, 8, 9, 10))
# Seed currency_rates: 1 EUR = 1 / 0.92 USD, 1 GBP = 1 / 0.79 USD.
EUR50 = 50 / 0.92
GBP10 = 10 / 0.79
MARTS = ["fct_sessions", "fct_daily_metrics", "fct_retention_daily", "fct_retention_weekly",
         "dim_customers", "fct_funnel_daily", "fct_attribution", "fct_channel_daily"]
COMPARED = ["staging.stg_events", "staging.stg_orders", "staging.stg_order_items",
            "staging.stg_customers", "staging.stg_products", "intermediate.int_identity_map",
            "intermediate.int_events_stitched", "intermediate.int_user_activity_daily",
            "intermediate.int_device_users"] + \
           [f"marts.{m}" for m in MARTS]


def ts(day: dt.date, h: int, m: int = 0, s: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, h, m, s)


def _workdir(work: Path, name: str) -> Path:
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def warehouse_of(work: Path, name: str) -> Path:
    return _workdir(work, name) / "warehouse.duckdb"


def start_dbt(args: list[str], work: Path, name: str) -> subprocess.Popen:
    """Start the real dbt CLI in `work/name`, on `work/name/warehouse.duckdb`, with its own
    target and log paths. The warehouse is given as the same *relative* path everywhere so
    the profile is identical and a copied partial-parse file can be reused (saves a parse)."""
    d = _workdir(work, name)
    target = d / "target"
    seed_manifest = work / "main" / "target" / "partial_parse.msgpack"
    if name != "main" and seed_manifest.exists() and not (target / "partial_parse.msgpack").exists():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(seed_manifest, target / "partial_parse.msgpack")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBT_", "NIGHTJAR_")) or k == "NIGHTJAR_PII_KEY"}
    env.update(NIGHTJAR_WAREHOUSE="warehouse.duckdb", DBT_SEND_ANONYMOUS_USAGE_STATS="false",
               NIGHTJAR_DBT_THREADS="2")
    cmd = [DBT, *args, "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
           "--target-path", str(target), "--log-path", str(d / "logs")]
    proc = subprocess.Popen(cmd, cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc.cmd = cmd  # type: ignore[attr-defined]
    return proc


def wait_dbt(proc: subprocess.Popen) -> str:
    try:
        out, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    assert proc.returncode == 0, f"{' '.join(proc.cmd)} failed:\n{out[-6000:]}"  # type: ignore[attr-defined]
    return out


def run_dbt(args: list[str], work: Path, name: str = "main") -> str:
    return wait_dbt(start_dbt(args, work, name))


def query(warehouse: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dbt")


@pytest.fixture(scope="module")
def base(work) -> Path:
    warehouse = build_base(warehouse_of(work, "main"))
    run_dbt(["build"], work, "main")
    return warehouse


def test_sessions(base):
    rows = query(base, """
        select user_key, customer_id, session_date, session_start, session_end, duration_seconds,
               events, page_views, purchases, is_engaged, is_bounce, converted, landing_page,
               utm_source, device_type, country
        from marts.fct_sessions order by user_key, session_start""")
    assert rows == [
        # a2: crosses midnight, one session on D1; the retried e202 counts once.
        ("a2", None, D1, ts(D1, 23, 50), ts(D2, 0, 10), 1200, 2, 2, 0, True, False, False, "/blog", None, "mobile", "FR"),
        ("a2", None, D3, ts(D3, 9), ts(D3, 9), 0, 1, 1, 0, False, True, False, "/", None, "mobile", "FR"),
        # c1: anonymous events stitched; a 30 min gap stays, 30 min + 1 s splits.
        ("c1", "c1", D1, ts(D1, 10), ts(D1, 10, 30, 5), 1805, 3, 1, 0, True, False, False, "/", "google", "desktop", "DE"),
        ("c1", "c1", D1, ts(D1, 11, 0, 6), ts(D1, 11, 0, 20), 14, 2, 0, 1, True, False, True, "/checkout", None, "desktop", "DE"),
        # c2: 3 seconds but 2 page views -> engaged.
        ("c2", "c2", D2, ts(D2, 12), ts(D2, 12, 0, 3), 3, 2, 2, 0, True, False, False, "/", None, "desktop", "GB"),
    ]
    # No bot sessions; session ids are unique and deterministic.
    ids = query(base, "select session_id from marts.fct_sessions")
    assert len({r[0] for r in ids}) == 5
    assert query(base, "select count(*) from marts.fct_sessions where user_key = 'b1'") == [(0,)]


def credits(warehouse: Path, order_id: str) -> dict[str, list[tuple]]:
    """{model: [(session_start, channel, credit rounded), ...] by touchpoint} of one order."""
    rows = query(warehouse, "select attribution_model, session_start, channel, round(credit, 6) "
                            "from marts.fct_attribution where order_id = ? order by 1, touchpoint_number", [order_id])
    out: dict[str, list[tuple]] = {}
    for model, start, channel, credit in rows:
        out.setdefault(model, []).append((start, channel, credit))
    return out


def test_channels_and_attribution(base):
    # c1's first session comes from google/cpc (paid search); the rest carry no tags or referrer
    assert query(base, "select user_key, session_start, channel from marts.fct_sessions order by 1, 2") == [
        ("a2", ts(D1, 23, 50), "direct"), ("a2", ts(D3, 9), "direct"),
        ("c1", ts(D1, 10), "paid_search"), ("c1", ts(D1, 11, 0, 6), "direct"),
        ("c2", ts(D2, 12), "direct"),
    ]
    # o1 (D1 11:00:19) has both of c1's sessions as touchpoints; so has o4 (D3), within 30 days
    paid, direct = (ts(D1, 10), "paid_search"), (ts(D1, 11, 0, 6), "direct")
    assert credits(base, "o1") == {
        "first_touch": [(*paid, 1.0), (*direct, 0.0)],
        "last_touch": [(*paid, 0.0), (*direct, 1.0)],
        "last_non_direct_touch": [(*paid, 1.0), (*direct, 0.0)],
        "linear": [(*paid, 0.5), (*direct, 0.5)],
        "time_decay": [(*paid, round(1 / (1 + 2 ** (3606 / 86400 / 7)), 6)),
                       (*direct, round(1 / (1 + 2 ** (-3606 / 86400 / 7)), 6))],
        "position_based": [(*paid, 0.5), (*direct, 0.5)],
    }
    assert credits(base, "o4")["first_touch"] == [(*paid, 1.0), (*direct, 0.0)]
    # the cancelled o3 has no rows; every order's credits sum to 1 and its revenue per model
    assert query(base, """select order_id, attribution_model, round(sum(credit), 9), round(sum(credited_revenue_usd), 6)
                          from marts.fct_attribution group by 1, 2 having attribution_model = 'linear' order by 1""") == [
        ("o1", "linear", 1.0, 100.0), ("o2", "linear", 1.0, round(EUR50, 6)), ("o4", "linear", 1.0, 30.0)]
    assert query(base, """select metric_date, channel, sessions, converted_sessions, attributed_orders_first_touch,
                                 round(attributed_revenue_usd_last_touch, 6), attributed_orders_linear
                          from marts.fct_channel_daily order by 1, 2""") == [
        (D1, "direct", 2, 1, 0.0, 100.0, 0.5), (D1, "paid_search", 1, 0, 1.0, 0.0, 0.5),
        (D2, "direct", 1, 0, 1.0, round(EUR50, 6), 1.0),
        (D3, "direct", 1, 0, 0.0, 30.0, 0.5), (D3, "paid_search", 0, 0, 1.0, 0.0, 0.5),
    ]


def test_daily_metrics(base):
    rows = query(base, "select * from marts.fct_daily_metrics order by metric_date")
    cols = [r[0] for r in query(base, """select column_name from information_schema.columns
        where table_schema = 'marts' and table_name = 'fct_daily_metrics' order by ordinal_position""")]
    assert cols == ["metric_date", "dau", "wau", "mau", "stickiness", "new_users", "sessions",
                    "avg_session_duration_seconds", "bounce_rate", "conversion_rate", "orders", "units",
                    "gross_revenue", "refunds", "net_revenue", "aov", "arpdau"]
    expected = [
        # D1: c1 + a2; 3 sessions (1805 + 14 + 1200 s), 1 converted; o1 USD 100, 2 units.
        (D1, 2, 2, 2, 1.0, 2, 3, 3019 / 3, 0.0, 1 / 3, 1, 2, 100.0, 0.0, 100.0, 100.0, 50.0),
        # D2: a2 (00:10) + c2, bot excluded; o2 EUR 50 = USD 50 / 0.92 refunded; o3 cancelled excluded.
        (D2, 2, 3, 3, 2 / 3, 1, 1, 3.0, 0.0, 0.0, 1, 1, EUR50, EUR50, 0.0, EUR50, 0.0),
        # D3: a2 only, one bounced session; o4 USD 30, 3 units.
        (D3, 1, 3, 3, 1 / 3, 0, 1, 0.0, 1.0, 0.0, 1, 3, 30.0, 0.0, 30.0, 30.0, 30.0),
    ]
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected):
        assert got == pytest.approx(want), (got, want)


def test_retention(base):
    assert query(base, "select * from marts.fct_retention_daily order by cohort_date, day_number") == [
        # cohort D1 = {c1, a2}: a2 back on D2 and D3; only days started by D3 exist.
        (D1, 0, 2, 2, 1.0, 2, 1.0),
        (D1, 1, 2, 1, 0.5, 1, 0.5),
        (D1, 2, 2, 1, 0.5, 1, 0.5),
        # cohort D2 = {c2}: not back on D3.
        (D2, 0, 1, 1, 1.0, 1, 1.0),
        (D2, 1, 1, 0, 0.0, 0, 0.0),
    ]
    assert query(base, "select * from marts.fct_retention_weekly") == [(D1, 0, 3, 3, 1.0, 3, 1.0)]


def test_staging_funnel_and_customers(base):
    # 13 raw rows, one retried delivery -> 12 events; the earliest received_at copy kept.
    assert query(base, "select count(*), sum(case when is_bot then 1 else 0 end) from staging.stg_events") == [(12, 2)]
    assert query(base, "select received_at, copies, _file from staging.stg_events where event_id = 'e202'") == [
        (ts(D2, 0, 10, 2), 2, "dt=2025-01-07/b2.jsonl")]
    assert query(base, "select event_name, event_timestamp from staging.stg_events where event_id in ('e101', 'e102') order by 1") == [
        ("page_viewed", ts(D1, 10)), ("product_viewed", ts(D1, 10, 0, 5))]
    # No raw PII beyond staging.
    cols = {r[0] for r in query(base, "select column_name from information_schema.columns where column_name ilike '%email%' and table_schema <> 'raw'")}
    assert cols == {"email_hash"}
    assert query(base, "select * from marts.fct_funnel_daily where metric_date = '2025-01-06'") == [
        (D1, 2, 1, 1, 1, 1, 0.5, 1.0, 1.0, 1.0, 0.5)]
    assert query(base, """select customer_id, orders_count, round(gross_revenue_usd, 6), net_revenue_usd,
                                 recency_days, rfm_segment is not null, acquisition_channel
                          from marts.dim_customers order by customer_id""") == [
        ("c1", 2, 130.0, 130.0, 0, True, "google"),
        ("c2", 1, round(EUR50, 6), 0.0, 1, True, "direct"),
        ("c3", 0, 0.0, 0.0, None, True, "unknown"),
        ("c4", 0, 0.0, 0.0, None, True, "unknown"),
    ]


def test_data_quality_measures(base):
    """The monitoring.dq_* measures of the base load, worked out from dbt_fixtures by hand."""
    # D1: 6 events; D2: e202 delivered twice, e401, e402 and the bot e901; D3: e203 and the bot e902
    assert query(base, "select * from monitoring.dq_event_quality where source = 'native' order by 1") == [
        (D1, "native", 6, 6, 0, 0.0, 0, 0.0),
        (D2, "native", 5, 4, 1, 0.2, 1, 0.25),
        (D3, "native", 2, 2, 0, 0.0, 1, 0.5)]
    assert query(base, "select metric_date, raw_rows, bot_share from monitoring.dq_event_quality "
                       "where source = 'all' order by 1") == [(D1, 6, 0.0), (D2, 5, 0.25), (D3, 2, 0.5)]
    assert query(base, "select event_name, events, human_events from monitoring.dq_event_volume "
                       "where metric_date = ? order by 1", [D2]) == [("page_viewed", 4, 3)]
    # the rejected line of dt=2025-01-07 over that partition's 5 lines read; the others have none
    assert query(base, "select metric_date, reason, rejected_rows, lines_read, reject_rate "
                       "from monitoring.dq_rejects order by 1") == [
        (D1, "none", 0, 6, 0.0), (D2, "not a JSON object", 1, 5, 0.2), (D3, "none", 0, 2, 0.0)]
    # loaded on D4: the 4 files of the D1 and D2 partitions are late (older than the day before), D3 is not
    assert query(base, "select * from monitoring.dq_late_files") == [(D4, "native", 5, 4, 13, 11, 11 / 13)]
    # three days are too little history to call anything new or vanished
    assert query(base, "select metric_date, event_names, property_keys, new_event_names, vanished_event_names, "
                       "new_property_keys, vanished_property_keys from monitoring.dq_schema_drift order by 1") == [
        (D1, 5, 10, None, None, None, None), (D2, 1, 0, None, None, None, None), (D3, 1, 0, None, None, None, None)]
    assert query(base, "select metric_date, table_name, rows_changed from monitoring.dq_shop_changes "
                       "where table_name = 'orders' order by 1") == [(D1, "orders", 1), (D2, "orders", 1),
                                                                    (D3, "orders", 2)]


def test_unit_tests(base, work):
    out = run_dbt(["test", "--select", "test_type:unit"], work, "main")
    assert "ERROR=0" in out and "FAIL" not in out.replace("FAIL=0", "")
    # every unit test defined beside the models ran and passed (project hooks count as passes too)
    assert f"PASS={_defined_unit_tests() + _project_hooks()}" in out, out[-2000:]


def _project_hooks() -> int:
    import yaml

    return len(yaml.safe_load((PROJECT / "dbt_project.yml").read_text()).get("on-run-start") or [])


def _defined_unit_tests() -> int:
    import yaml

    return sum(len((yaml.safe_load(p.read_text()) or {}).get("unit_tests") or [])
               for p in (PROJECT / "models").rglob("*.yml"))


def run_nightly(work: Path, name: str) -> str:
    """The nightly run (the Dagster asset's arguments, test window read from the warehouse)."""
    return run_dbt(nightly_dbt_args(warehouse_of(work, name)), work, name)


def test_incremental_equals_full_refresh(base, work):
    inc = warehouse_of(work, "inc")
    full = warehouse_of(work, "full")
    shutil.copy(base, inc)               # the warehouse as the first night left it
    append_increment(inc)                # the second night's raw load
    shutil.copy(inc, full)
    # Both at once (separate warehouses and target paths): incremental, and from scratch.
    # Unit tests already ran in the first build (and test_unit_tests); data tests run on the
    # incremental result only, to keep the test quick on a shared 2-core machine.
    args = nightly_dbt_args(inc)
    assert "--event-time-start" in args  # the night's data tests look at the new loads only
    incremental = start_dbt(args, work, "inc")
    from_scratch = start_dbt(["build", "--full-refresh", "--exclude", "test_type:unit", "test_type:data"],
                             work, "full")
    wait_dbt(incremental)
    wait_dbt(from_scratch)

    con = duckdb.connect()
    try:
        con.execute(f"attach '{inc}' as inc (read_only)")
        con.execute(f"attach '{full}' as fr (read_only)")
        diffs = {t: table_diff(con, t, "inc", "fr") for t in COMPARED}
    finally:
        con.close()
    assert all(a == 0 and b == 0 for a, b, _ in diffs.values()), diffs
    assert all(n > 0 for _, _, n in diffs.values()), diffs

    # And the increment did what it should (so the equality above is not vacuous).
    rows = query(inc, "select user_key, session_start, session_end, events from marts.fct_sessions order by 1, 2")
    assert rows == [
        ("a5", ts(D4, 10), ts(D4, 10), 1),
        ("c1", ts(D1, 10), ts(D1, 11, 0, 20), 6),      # late 10:45 event merged both D1 sessions
        ("c2", ts(D2, 12), ts(D2, 12, 0, 3), 2),
        ("c2", ts(D2, 14), ts(D2, 14), 1),             # late event, 2 days old
        ("c2", ts(D4, 12), ts(D4, 12), 1),
        ("c3", ts(D1, 23, 50), ts(D2, 0, 10), 2),      # a2 identified as c3: history re-keyed
        ("c3", ts(D3, 9), ts(D3, 9), 1),
        ("c3", ts(D4, 8), ts(D4, 8), 1),
    ]
    metrics = query(inc, "select metric_date, dau, sessions, orders, round(gross_revenue, 6), round(refunds, 6), "
                         "round(net_revenue, 6) from marts.fct_daily_metrics order by 1")
    assert metrics == ([
        (D1, 2, 2, 1, 100.0, 100.0, 0.0),     # o1 refunded afterwards: refund lands on D1
        (D2, 2, 2, 1, round(EUR50, 6), round(EUR50, 6), 0.0),
        (D3, 1, 1, 1, 30.0, 0.0, 30.0),
        (D4, 3, 3, 1, round(GBP10, 6), 0.0, round(GBP10, 6)),       # o5 GBP 10
    ])
    assert query(inc, "select count(*), sum(copies) from staging.stg_events") == [(18, 21)]
    # c1's late 10:45 event merged its two D1 sessions: o1 and o4 now have one touchpoint, the
    # paid-search session, which takes all the credit that last touch gave to direct before
    merged = [(ts(D1, 10), "paid_search", 1.0)]
    assert credits(inc, "o1") == {m: merged for m in credits(base, "o1")}
    assert credits(inc, "o4")["last_touch"] == merged


def _diffs(a: Path, b: Path) -> dict[str, tuple[int, int, int]]:
    con = duckdb.connect()
    try:
        con.execute(f"attach '{a}' as inc (read_only)")
        con.execute(f"attach '{b}' as fr (read_only)")
        return {t: table_diff(con, t, "inc", "fr") for t in COMPARED}
    finally:
        con.close()


def test_handover_late_cohort_move_and_an_empty_night(base, work):
    wh = warehouse_of(work, "night3")
    shutil.copy(base, wh)
    append_increment(wh)
    run_nightly(work, "night3")
    append_night3(wh)
    run_nightly(work, "night3")
    after_night3 = shutil.copy(wh, work / "after_night3.duckdb")
    run_nightly(work, "night3")  # a night without new events
    # ... changes nothing
    assert all(a == 0 and b == 0 for a, b, _ in _diffs(wh, after_night3).values())

    full = warehouse_of(work, "night3_full")
    shutil.copy(wh, full)
    run_dbt(["build", "--full-refresh", "--exclude", "test_type:unit", "test_type:data"], work, "night3_full")
    diffs = _diffs(wh, full)
    assert all(a == 0 and b == 0 for a, b, _ in diffs.values()), diffs

    # a1 went to c4: its anonymous D1 events left c1 (whose D1 session split at the 30 min
    # + 1 s gap) and are c4's first session, so c4's cohort is D1.
    rows = query(wh, "select user_key, session_start, session_end, events from marts.fct_sessions "
                     "where user_key in ('c1', 'c4') order by 1, 2")
    assert rows == [
        ("c1", ts(D1, 10, 30, 5), ts(D1, 10, 30, 5), 1),
        ("c1", ts(D1, 11, 0, 6), ts(D1, 11, 0, 20), 2),
        ("c4", ts(D1, 10), ts(D1, 10, 0, 5), 2),
        ("c4", ts(D1, 10, 45), ts(D1, 10, 45), 1),
        ("c4", ts(D5, 10), ts(D5, 10), 1),
    ]
    # a5's late D2 event moved it from the D4 cohort (now gone) to D2; cohort D1 = c1, c3, c4.
    assert query(wh, "select cohort_date, day_number, cohort_size, active_users from marts.fct_retention_daily "
                     "where day_number in (0, 2, 4) order by 1, 2") == [
        (D1, 0, 3, 3), (D1, 2, 3, 1), (D1, 4, 3, 2),
        (D2, 0, 2, 2), (D2, 2, 2, 2),
    ]
    assert query(wh, "select count(*) from marts.fct_retention_daily where cohort_date > ?", [D2]) == [(0,)]
    # a1's paid-search session went with the device to c4 (no orders): c1's orders are now
    # credited to c1's own, direct sessions, and paid search keeps its session but no order
    assert credits(wh, "o1")["first_touch"] == [(ts(D1, 10, 30, 5), "direct", 1.0), (ts(D1, 11, 0, 6), "direct", 0.0)]
    assert query(wh, "select count(*) from marts.fct_attribution where channel <> 'direct'") == [(0,)]
    assert query(wh, "select sum(sessions), sum(attributed_orders_first_touch) from marts.fct_channel_daily "
                     "where channel = 'paid_search'") == [(1, 0.0)]


def _order_invariants(warehouse: Path) -> list[tuple]:
    """Orders whose credits do not sum to 1, or credited revenue to the order's, under a model."""
    return query(warehouse, """
        select order_id, attribution_model
        from marts.fct_attribution
        group by order_id, attribution_model, order_revenue_usd
        having abs(sum(credit) - 1) > 1e-9 or abs(sum(credited_revenue_usd) - order_revenue_usd) > 1e-6""")


@pytest.mark.slow
def test_attribution_follows_late_sessions_identified_devices_and_order_changes(base, work):
    wh = warehouse_of(work, "attr")
    shutil.copy(base, wh)
    organic_social, d2_direct = (ts(D1, 15), "organic_social"), (ts(D2, 12), "direct")
    assert credits(wh, "o2")["first_touch"] == [(*d2_direct, 1.0)]

    # Night A: c2's late D1 session from facebook lands in o2's window, before its D2 session
    append_attribution_night(wh, "A")
    run_nightly(work, "attr")
    o2 = credits(wh, "o2")
    assert o2["first_touch"] == [(*organic_social, 1.0), (*d2_direct, 0.0)]
    assert o2["last_non_direct_touch"] == [(*organic_social, 1.0), (*d2_direct, 0.0)]
    assert o2["last_touch"] == [(*organic_social, 0.0), (*d2_direct, 1.0)]
    # the new order o6 (D4 12:05) has c2's three sessions of the last 30 days
    assert [t[:2] for t in credits(wh, "o6")["linear"]] == [organic_social, d2_direct, (ts(D4, 12), "direct")]
    # o4 was refunded while its customer stayed away: its rows follow the order's change
    assert query(wh, "select distinct is_refunded from marts.fct_attribution where order_id = 'o4'") == [(True,)]

    # Night B: c1 logs in on a7; o1 cancelled, o2 quarantined, o7 and o8 new. The full refresh of
    # the same raw layer runs beside the incremental night.
    append_attribution_night(wh, "B")
    full = warehouse_of(work, "attr_full")
    shutil.copy(wh, full)
    incremental = start_dbt(nightly_dbt_args(wh), work, "attr")
    from_scratch = start_dbt(["build", "--full-refresh", "--exclude", "test_type:unit", "test_type:data"],
                             work, "attr_full")
    wait_dbt(incremental)
    wait_dbt(from_scratch)

    # a7's anonymous D3 session (bing) is now c1's: o4's last touch moves to it from c1's
    # direct D1 session, and o7 (D4) credits it as its last non-direct touch
    paid, direct = (ts(D1, 10), "paid_search"), (ts(D1, 11, 0, 6), "direct")
    assert credits(wh, "o4")["last_touch"] == [(*paid, 0.0), (*direct, 0.0), (ts(D3, 10), "organic_search", 1.0)]
    assert credits(wh, "o7")["last_non_direct_touch"][2] == (ts(D3, 10), "organic_search", 1.0)
    # the cancelled o1 and the quarantined o2 have no rows left; the orders that count do
    assert query(wh, "select distinct order_id from marts.fct_attribution order by 1") == [
        ("o4",), ("o6",), ("o7",), ("o8",)]
    # o8's customer has no sessions: one unattributed direct row per model
    assert query(wh, "select count(*), sum(credit), bool_and(not is_attributed and channel = 'direct') "
                     "from marts.fct_attribution where order_id = 'o8'") == [(6, 6.0, True)]
    assert query(wh, "select order_id, reason from staging.stg_orders_rejected") == [("o2", "unknown_currency")]
    assert _order_invariants(wh) == []
    # o6's session went on after the order (late event): the order's rows carry the new load time
    assert query(wh, "select distinct _max_loaded_at from marts.fct_attribution where order_id = 'o6'") == [
        (dt.datetime(2025, 1, 11, 2),)]
    # one load time per order: the nightly data tests, windowed on it, see whole orders ...
    assert query(wh, "select order_id from marts.fct_attribution group by order_id "
                     "having count(distinct coalesce(_max_loaded_at, timestamp '1900-01-01')) > 1") == []
    # ... and this night's tests of fct_attribution looked at the new loads only
    results = json.loads((work / "attr" / "target" / "run_results.json").read_text())["results"]
    tests = [r for r in results if r["unique_id"].startswith("test.") and "fct_attribution" in r["unique_id"]]
    assert len(tests) >= 10 and all(r["status"] == "pass" and "_max_loaded_at >= cast(" in r["compiled_code"]
                                    for r in tests), [(r["unique_id"], r["status"]) for r in tests]
    # D4: o6 (USD 40, first touch organic social) and o7 (USD 20, first touch paid search),
    # both last touch direct
    assert query(wh, """select channel, sessions, attributed_orders_first_touch, round(attributed_revenue_usd_last_touch, 6)
                        from marts.fct_channel_daily where metric_date = ? order by 1""", [D4]) == [
        ("direct", 2, 0.0, 60.0), ("organic_search", 0, 0.0, 0.0),
        ("organic_social", 0, 1.0, 0.0), ("paid_search", 0, 1.0, 0.0)]
    # and every table equals the full refresh of the same raw layer
    diffs = _diffs(wh, full)
    assert all(a == 0 and b == 0 for a, b, _ in diffs.values()), diffs
