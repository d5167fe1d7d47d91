"""Orchestration: the nightly job and schedule, daily partitions and single-run dbt backfills.

* the nightly schedule requests yesterday's partition in the configured timezone and cron;
* the nightly job selects ingestion, dbt, ML scoring/forecasts, alerts and reports, never
  assets tagged ``nightjar/cadence=weekly`` (retraining);
* a backfill of a 35-day range, run as ONE run over the partition key range, repairs the
  incremental models (rows deleted in the window) and picks up new rows, giving exactly the
  tables of a ``dbt build --full-refresh`` of the same raw data (EXCEPT ALL both ways).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pytest

from dagster_project.keys import CADENCE_WEEKLY
from dagster_project.orchestration.jobs import NIGHTLY_SELECTION
from dagster_project.orchestration.partitions import NIGHTLY, RUN_KIND_TAG, build_daily_partitions, day_that_ended
from dagster_project.orchestration.schedules import build_nightly_schedule
from dagster_project.transform.assets import nightjar_dbt_models
from dbt_fixtures import table_diff
from nightjar.settings import get_settings

REPO = Path(__file__).resolve().parents[1]
DBT_PROJECT = REPO / "dbt_project"
_VENV_DBT = REPO / ".venv" / "bin" / "dbt"
DBT = str(_VENV_DBT) if _VENV_DBT.exists() else (shutil.which("dbt") or "dbt")

RAW_EVENTS = dg.AssetKey(["raw", "events"])
RAW_ORDERS = dg.AssetKey(["raw", "orders"])
STG_EVENTS = dg.AssetKey(["staging", "stg_events"])
FCT_SESSIONS = dg.AssetKey(["marts", "fct_sessions"])
DAILY_METRICS = dg.AssetKey(["marts", "fct_daily_metrics"])
ALERT_EVENTS = dg.AssetKey(["alerts", "alert_events"])
COMPARED = ["staging.stg_events", "staging.stg_orders", "staging.stg_order_items", "staging.stg_customers",
            "staging.stg_products", "intermediate.int_identity_map", "intermediate.int_events_stitched",
            "intermediate.int_user_activity_daily", "intermediate.int_device_users", "marts.fct_sessions", "marts.fct_daily_metrics",
            "marts.fct_retention_daily", "marts.fct_retention_weekly", "marts.fct_funnel_daily",
            "marts.dim_customers", "marts.fct_attribution", "marts.fct_channel_daily"]


def project_defs(*extra: dg.Definitions) -> dg.Definitions:
    """The project's Definitions, plus the orchestration domain until the lead registers it
    in definitions.py, plus `extra` domains not registered there yet."""
    from dagster_project.definitions import defs
    from dagster_project.orchestration import defs as orchestration

    parts = [defs]
    if not any(j.name == "nightly" for j in (defs.jobs or [])):
        parts.append(orchestration.defs)
    graph = defs.resolve_asset_graph()
    registered = {k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable}
    for d in extra:
        if not {k for a in (d.assets or []) for k in getattr(a, "keys", ())} & registered:
            parts.append(d)
    return dg.Definitions.merge(*parts)


def nightly_keys(defs: dg.Definitions) -> set[dg.AssetKey]:
    return set(defs.resolve_job_def("nightly").asset_layer.selected_asset_keys)


# --- settings and schedule ---------------------------------------------------------------


def test_partitions_start_is_a_setting(tmp_path: Path) -> None:
    assert get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path)}).partitions_start == "2024-01-01"
    s = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path), "NIGHTJAR_PARTITIONS_START": "2025-01-01"})
    assert s.partitions_start == "2025-01-01"
    assert get_settings(s.env()).partitions_start == "2025-01-01"
    p = build_daily_partitions(s)
    assert p.get_first_partition_key() == "2025-01-01"


def test_partitions_start_where_the_landing_data_starts(tmp_path: Path) -> None:
    for day in ("2025-03-02", "2025-02-27", "2025-03-01"):
        (tmp_path / "landing" / "events" / f"dt={day}").mkdir(parents=True)
    (tmp_path / "landing" / "events" / "dt=notadate").mkdir()
    assert get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path)}).partitions_start == "2025-02-27"
    # an explicit setting still wins
    assert get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path), "NIGHTJAR_PARTITIONS_START": "2025-01-01"}
                        ).partitions_start == "2025-01-01"


def _tick(defs: dg.Definitions, at: datetime) -> dg.RunRequest:
    """One tick of the nightly schedule, validated against its job like the daemon does."""
    schedule = defs.resolve_schedule_def("nightly_schedule")
    with dg.build_schedule_context(scheduled_execution_time=at, repository_def=defs.get_repository_def()) as context:
        data = schedule.evaluate_tick(context)
    assert data.run_requests and len(data.run_requests) == 1, data
    return data.run_requests[0]


def test_nightly_schedule_targets_yesterday_in_the_default_timezone(tmp_path: Path) -> None:
    defs = project_defs()
    schedule = defs.resolve_schedule_def("nightly_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED  # registered; the user turns it on
    assert schedule.job_name == "nightly"
    request = _tick(defs, datetime(2025, 3, 10, 2, 0, tzinfo=timezone.utc))
    assert request.partition_key == "2025-03-09"
    assert request.tags[RUN_KIND_TAG] == NIGHTLY  # dbt's watermark path, not a backfill window
    # The requested key is a partition of the job (not in the future).
    job = defs.resolve_job_def("nightly")
    assert job.partitions_def is not None and job.partitions_def.has_partition_key("2025-03-09")


def test_nightly_schedule_follows_the_configured_cron_and_timezone(tmp_path: Path) -> None:
    settings = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path), "NIGHTJAR_NIGHTLY_CRON": "30 1 * * *",
                             "NIGHTJAR_TIMEZONE": "America/New_York"})
    partitions = build_daily_partitions(settings)

    @dg.asset(partitions_def=partitions)
    def daily() -> None: ...

    job = dg.define_asset_job("nightly", selection=NIGHTLY_SELECTION, partitions_def=partitions)
    schedule = build_nightly_schedule(settings, job=job)
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 1 * * *", "America/New_York")
    defs = dg.Definitions(assets=[daily], jobs=[job], schedules=[schedule])
    ny = ZoneInfo("America/New_York")
    # 01:30 in New York on March 10th (05:30 UTC): the day that ended is March 9th.
    assert _tick(defs, datetime(2025, 3, 10, 1, 30, tzinfo=ny)).partition_key == "2025-03-09"
    # 03:00 UTC on March 10th is still March 9th in New York: the day that ended is the 8th.
    assert day_that_ended(datetime(2025, 3, 10, 3, 0, tzinfo=timezone.utc), "America/New_York") == "2025-03-08"
    assert partitions.timezone == "America/New_York"
    window = partitions.time_window_for_partition_key("2025-03-09")
    assert window.start.astimezone(timezone.utc) == datetime(2025, 3, 9, 5, 0, tzinfo=timezone.utc)  # EST -> EDT day
    assert window.end.astimezone(timezone.utc) == datetime(2025, 3, 10, 4, 0, tzinfo=timezone.utc)


# --- job selection -------------------------------------------------------------------------


def test_nightly_job_selects_the_chain_but_not_retraining() -> None:
    from dagster_project.ml import defs as ml
    from dagster_project.report import defs as report
    from dagster_project.keys import CHURN_SCORES, DEMAND_FORECAST, FORECAST_ACCURACY, KPI_REPORT

    @dg.asset(key=["ml", "some_retraining"], deps=[DAILY_METRICS], group_name="ml", tags=CADENCE_WEEKLY)
    def some_retraining() -> None: ...

    defs = project_defs(ml.defs, report.defs, dg.Definitions(assets=[some_retraining]))
    keys = nightly_keys(defs)
    for key in (RAW_EVENTS, RAW_ORDERS, STG_EVENTS, FCT_SESSIONS, DAILY_METRICS, ALERT_EVENTS,
                CHURN_SCORES, DEMAND_FORECAST, FORECAST_ACCURACY, KPI_REPORT):
        assert key in keys, key
    assert dg.AssetKey(["ml", "some_retraining"]) not in keys
    graph = defs.resolve_asset_graph()
    weekly = {k for k in graph.get_all_asset_keys() if graph.get(k).tags.get("nightjar/cadence") == "weekly"}
    assert weekly and not (weekly & keys)
    # The dbt tests ride along as asset checks.
    checks = defs.resolve_job_def("nightly").asset_layer.asset_graph.asset_check_keys
    assert any(c.asset_key == FCT_SESSIONS for c in checks)


def test_registered_retraining_assets_are_not_nightly() -> None:
    """Once the ML domain is registered in definitions.py, its retraining assets (those with
    their own automation condition) must carry nightjar/cadence=weekly."""
    defs = project_defs()
    graph = defs.resolve_asset_graph()
    ml_keys = [k for k in graph.get_all_asset_keys() if graph.get(k).group_name == "ml"]
    if not ml_keys:
        pytest.skip("the ML domain is not registered in dagster_project/definitions.py yet")
    retraining = {k for k in ml_keys if graph.get(k).automation_condition is not None}
    assert retraining, "no ML asset with its own automation condition?"
    assert not (retraining & nightly_keys(defs)), "retraining assets must be tagged nightjar/cadence=weekly"


def test_dbt_models_are_partitioned_with_a_single_run_backfill() -> None:
    assert nightjar_dbt_models.partitions_def is not None
    assert nightjar_dbt_models.backfill_policy == dg.BackfillPolicy.single_run()
    graph = project_defs().resolve_asset_graph()
    # Only the dbt models are partitioned: ingestion reads whatever is new.
    assert graph.get(RAW_EVENTS).partitions_def is None
    assert graph.get(FCT_SESSIONS).partitions_def == nightjar_dbt_models.partitions_def
    assert graph.get(DAILY_METRICS).freshness_policy is not None
    assert {"dbt", "duckdb"} <= set(graph.get(DAILY_METRICS).kinds)


# --- backfill == full refresh ---------------------------------------------------------------


def _start_full_refresh(warehouse: Path, work: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBT_", "NIGHTJAR_")) or k == "NIGHTJAR_PII_KEY"}
    env.update(NIGHTJAR_WAREHOUSE=str(warehouse), DBT_SEND_ANONYMOUS_USAGE_STATS="false", NIGHTJAR_DBT_THREADS="2")
    cmd = [DBT, "build", "--full-refresh", "--exclude", "test_type:unit", "test_type:data",
           "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
           "--target-path", str(work / "target"), "--log-path", str(work / "logs")]
    return subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _materializations(result: dg.ExecuteInProcessResult) -> dict[dg.AssetKey, dict]:
    return {e.asset_key: {k: getattr(v, "value", v) for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()}


@pytest.mark.slow
def test_backfill_of_a_date_range_equals_a_full_refresh(data_dir: Path, tmp_path: Path) -> None:
    from nightjar.simulator import append_days, simulate

    simulate(data_dir, start=date(2025, 1, 1), days=40, customers=150, seed=5)  # 2025-01-01 .. 02-09
    defs = project_defs()
    job = defs.resolve_job_def("nightly")
    graph = defs.resolve_asset_graph()
    ingestion = [k for k in graph.get_all_asset_keys() if graph.get(k).group_name == "ingestion"]
    dbt_keys = list(nightjar_dbt_models.keys)
    warehouse = get_settings().warehouse
    instance = dg.DagsterInstance.ephemeral()

    # Night 1 as the schedule runs it (ingestion + dbt; watermark path).
    night = job.execute_in_process(instance=instance, partition_key="2025-02-09", tags={RUN_KIND_TAG: NIGHTLY},
                                   asset_selection=ingestion + dbt_keys, raise_on_error=False)
    assert night.success
    md = _materializations(night)
    assert md[STG_EVENTS]["dbt_mode"] == "incremental (watermark)"
    assert md[STG_EVENTS]["dagster/row_count"] > 10_000
    assert (md[DAILY_METRICS]["min_date"], md[DAILY_METRICS]["max_date"][:7]) == ("2025-01-01", "2025-02")

    # Damage inside the window (as a bug or a lost load would), then new data arrives:
    # 3 more days with late files for past days, ingested but not yet transformed.
    con = duckdb.connect(str(warehouse))
    try:
        lost_events = con.execute("delete from staging.stg_events where event_date between '2025-01-10' and "
                                  "'2025-01-20' returning 1").fetchall()
        lost_sessions = con.execute("delete from marts.fct_sessions where session_date between '2025-01-12' "
                                    "and '2025-01-14' returning 1").fetchall()
        con.execute("update marts.fct_sessions set events = events + 100 where session_date = '2025-02-01'")
    finally:
        con.close()
    assert len(lost_events) > 1000 and len(lost_sessions) > 100
    append_days(data_dir, 3)
    load = job.execute_in_process(instance=instance, partition_key="2025-02-12", tags={RUN_KIND_TAG: NIGHTLY},
                                  asset_selection=ingestion, raise_on_error=False)
    assert load.success

    # The oracle: a full refresh of the same raw data, on a copy (in parallel with the backfill).
    fr_dir = tmp_path / "full_refresh"
    fr_dir.mkdir()
    shutil.copy(warehouse, fr_dir / "warehouse.duckdb")
    full_refresh = _start_full_refresh(fr_dir / "warehouse.duckdb", fr_dir)

    # The backfill: 35 daily partitions, ONE run (and one dbt build) over the key range.
    backfill = job.execute_in_process(
        instance=instance, asset_selection=dbt_keys, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": "2025-01-05", "dagster/asset_partition_range_end": "2025-02-08"})
    out, _ = full_refresh.communicate(timeout=600)
    assert full_refresh.returncode == 0, out[-4000:]
    assert backfill.success
    dbt_steps = [e for e in backfill.all_events if e.is_step_start]
    assert len(dbt_steps) == 1
    md = _materializations(backfill)
    assert md[FCT_SESSIONS]["dbt_mode"].startswith("backfill 2025-01-05..2025-02-08")
    assert "[2025-01-05 00:00:00, 2025-02-09 00:00:00)" in md[FCT_SESSIONS]["dbt_mode"]
    mats = [e for e in backfill.get_asset_materialization_events() if e.asset_key == FCT_SESSIONS]
    assert len(mats) == 35  # one materialisation per partition of the range

    con = duckdb.connect()
    try:
        con.execute(f"attach '{warehouse}' as bf (read_only)")
        con.execute(f"attach '{fr_dir / 'warehouse.duckdb'}' as fr (read_only)")
        diffs = {t: table_diff(con, t, "bf", "fr") for t in COMPARED}
        new_days = con.execute("select count(*) from bf.staging.stg_events where event_date > '2025-02-10'").fetchone()[0]
    finally:
        con.close()
    assert all(a == 0 and b == 0 for a, b, _ in diffs.values()), diffs
    assert all(n > 0 for _, _, n in diffs.values()), diffs
    assert new_days > 0  # the appended days came in through the watermark path of the same run
