"""Dagster glue: sensors (run requests + cursors), the alerts asset against a temp DuckDB,
the run-failure path, and secret-free metadata."""
from __future__ import annotations

import json
import socket
from datetime import date

import dagster as dg
import duckdb
import pytest

from dagster_project.alerts.assets import alert_events
from dagster_project.alerts.defs import defs as alerts_defs
from dagster_project.keys import ALERT_EVENTS, DEMAND_FORECAST, FCT_DAILY_METRICS
from dagster_project.alerts.sensors import alerts_housekeeping, alerts_on_new_data, alerts_on_run_failure
from dagster_project.resources import WarehouseResource
from nightjar.alerts import sample

SECRET_PATH = "/services/TDAGSTER/BDAGSTER/dagstersecretslacktoken"


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def _materialize_mart(instance, key=FCT_DAILY_METRICS):
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key))


def test_new_data_sensor_requests_one_run_per_batch_and_advances_its_cursor(instance):
    ctx = dg.build_sensor_context(instance=instance)
    assert isinstance(alerts_on_new_data(ctx), dg.SkipReason)
    for _ in range(5):  # a backfill: five runs rebuild the mart
        _materialize_mart(instance)
    result = alerts_on_new_data(dg.build_sensor_context(instance=instance))
    assert len(result.run_requests) == 1
    req = result.run_requests[0]
    cursor = json.loads(result.cursor)
    last_id = instance.fetch_materializations(FCT_DAILY_METRICS, limit=1).records[0].storage_id
    assert cursor == {"marts/fct_daily_metrics": last_id}
    assert req.run_key == f"new_data:marts/fct_daily_metrics={last_id}"
    assert req.tags["nightjar/alerts_trigger"] == "marts/fct_daily_metrics"
    # nothing new since the cursor
    assert isinstance(alerts_on_new_data(dg.build_sensor_context(instance=instance, cursor=result.cursor)),
                      dg.SkipReason)
    # the forecast is published
    _materialize_mart(instance, DEMAND_FORECAST)
    again = alerts_on_new_data(dg.build_sensor_context(instance=instance, cursor=result.cursor))
    assert again.run_requests[0].tags["nightjar/alerts_trigger"] == "ml/demand_forecast"
    assert set(json.loads(again.cursor)) == {"marts/fct_daily_metrics", "ml/demand_forecast"}
    assert again.run_requests[0].run_key != req.run_key


def _warehouse(data_dir, incidents):
    shop = sample.generate(date(2024, 1, 1), 199, seed=1, incidents=incidents)  # ends 2024-07-17
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"))
    sample.write(con, shop)
    con.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _defs():
    return dg.Definitions.merge(alerts_defs, dg.Definitions(resources={"warehouse": WarehouseResource()}))


def test_alerts_asset_materialises_against_the_warehouse(instance, data_dir, monkeypatch, caplog):
    outage = date(2024, 7, 17)
    _warehouse(data_dir, [sample.Incident("checkout_outage", outage)])
    port = _closed_port()  # Slack is down
    monkeypatch.setenv("NIGHTJAR_SLACK_WEBHOOK_URL", f"http://127.0.0.1:{port}{SECRET_PATH}")
    monkeypatch.setenv("NIGHTJAR_WEBHOOK_SECRET", "dagster-hmac-secret-value")
    monkeypatch.setenv("NIGHTJAR_ALERTS_BACKOFF_SECONDS", "0.001")
    for var in ("NIGHTJAR_WEBHOOK_URL", "NIGHTJAR_SMTP_HOST"):
        monkeypatch.delenv(var, raising=False)
    run_config = {"ops": {"alerts__alert_events": {"config": {"max_wait_seconds": 0}}}}
    result = dg.materialize([alert_events], instance=instance, resources={"warehouse": WarehouseResource()},
                            run_config=run_config)
    assert result.success
    md = result.asset_materializations_for_node("alerts__alert_events")[0].metadata
    assert md["evaluations"].value == 7 * 5 + 1  # 7 new dates x 5 rules + the freshness policy
    assert "checkout_outage" in md["firing_rules"].value
    assert md["outbox_pending"].value >= 1  # slack is down: kept for the next run
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    fired = con.execute("select rule_name, metric_date from alerts.alert_events where transition = 'firing'").fetchall()
    outbox_rows = con.execute("select channel, status, last_error from alerts.outbox order by 1").fetchall()
    con.close()
    assert ("checkout_outage", outage) in fired
    assert ("slack", "pending") in {(r[0], r[1]) for r in outbox_rows}

    # metadata and logs carry no secrets
    records = instance.get_records_for_run(result.run_id).records
    dump = json.dumps({k: str(v.value) for k, v in md.items()}) + caplog.text + \
        "\n".join(str(r.event_log_entry) for r in records) + str(outbox_rows)
    for secret in ("dagstersecretslacktoken", "TDAGSTER", "dagster-hmac-secret-value"):
        assert secret not in dump

    # housekeeping: the pending notification is due -> a delivery-only retry run
    reqs = alerts_housekeeping(dg.build_sensor_context(instance=instance, definitions=_defs()))
    retry = [r for r in reqs if r.tags["nightjar/alerts_trigger"] == "outbox_retry"]
    assert len(retry) == 1
    assert retry[0].run_config == {"ops": {"alerts__alert_events": {"config": {"evaluate": False}}}}
    # a second materialisation evaluates nothing new (each metric date exactly once)
    again = dg.materialize([alert_events], instance=instance, resources={"warehouse": WarehouseResource()},
                           run_config=run_config)
    md2 = again.asset_materializations_for_node("alerts__alert_events")[0].metadata
    assert md2["evaluations"].value == 1  # only the (wall-clock) freshness policy


def test_freshness_sensor_requests_a_run_when_the_mart_is_stale(instance, data_dir, tmp_path, monkeypatch):
    rules = tmp_path / "rules.yml"
    rules.write_text("rules: [{name: r, metric: orders, type: threshold, op: '<', value: 1}]\n"
                     "freshness: [{name: mart_stale, table: marts.fct_daily_metrics, max_age_hours: 0.0001}]\n")
    monkeypatch.setenv("NIGHTJAR_ALERTS_FILE", str(rules))
    assert isinstance(alerts_housekeeping(dg.build_sensor_context(instance=instance)), dg.SkipReason)
    _materialize_mart(instance)
    import time

    time.sleep(0.5)  # older than 0.36 s
    reqs = alerts_housekeeping(dg.build_sensor_context(instance=instance))
    assert [r.run_key.rsplit(":", 1)[0] for r in reqs] == ["freshness:mart_stale"]


@dg.op
def _boom():
    raise RuntimeError("dbt build failed: relation marts.fct_daily_metrics does not exist")


@dg.job
def nightly_pipeline():
    _boom()


def test_run_failure_sensor_requests_a_notification_run(instance, data_dir, monkeypatch, caplog):
    result = nightly_pipeline.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    ctx = dg.build_run_status_sensor_context(
        sensor_name="alerts_on_run_failure", dagster_event=result.get_run_failure_event(),
        dagster_instance=instance, dagster_run=result.dagster_run).for_run_failure()
    req = alerts_on_run_failure(ctx)
    assert isinstance(req, dg.RunRequest)
    assert req.run_key == f"run_failure:{result.run_id}"
    cfg = req.run_config["ops"]["alerts__alert_events"]["config"]
    assert cfg["failed_job_name"] == "nightly_pipeline"
    assert "relation marts.fct_daily_metrics does not exist" in cfg["failure_message"]
    # the requested run queues and delivers the notification (log channel: nothing configured)
    _warehouse(data_dir, [])
    monkeypatch.delenv("NIGHTJAR_SLACK_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("NIGHTJAR_SMTP_HOST", raising=False)
    out = dg.materialize([alert_events], instance=instance, resources={"warehouse": WarehouseResource()},
                         run_config=req.run_config)
    assert out.success
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    rows = con.execute("select idempotency_key, channel, status from alerts.outbox where kind = 'run_failure'").fetchall()
    con.close()
    assert rows == [(f"run_failure:{result.run_id}", "log", "sent")]
