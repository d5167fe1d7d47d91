"""Alert sensors. They are light: they read only the Dagster instance (never the DuckDB
warehouse, which allows one writer) and request runs of `alerts_job`, which does the work
under the warehouse pool.

* `alerts_on_new_data` — new materialisations of the marts / forecast / dq_* measures -> one evaluation run
  (cursor = last seen event storage id per asset; a backfill of many days -> one run that
  evaluates every new date).
* `alerts_housekeeping` — the marts are stale beyond their freshness policy, or the last
  alerts run left outbox rows pending whose retry is due -> a run.
* `alerts_on_run_failure` — a pipeline run failed -> a run that queues and delivers the
  failure notification (a failure of the alerts job itself is sent directly, no warehouse).
"""
from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone

import dagster as dg

from dagster_project.alerts.assets import alert_events
from dagster_project.keys import ALERT_EVENTS, DEMAND_FORECAST, DQ_TABLES, FCT_DAILY_METRICS, table_key
from nightjar.alerts.config import load_config
from nightjar.settings import get_settings

logger = logging.getLogger("nightjar.alerts.sensors")

alerts_job = dg.define_asset_job("alerts_job", selection=[alert_events], tags={"nightjar/domain": "alerts"})

MONITORED_KEYS = (FCT_DAILY_METRICS, DEMAND_FORECAST, *DQ_TABLES)


def _run_config(**config) -> dict:
    return {"ops": {"alerts__alert_events": {"config": config}}}


def _key_str(key: dg.AssetKey) -> str:
    return key.to_user_string()


def new_materializations(instance: dg.DagsterInstance, cursor: dict[str, int],
                         keys=MONITORED_KEYS) -> tuple[dict[str, int], list[str]]:
    """(advanced cursor, keys with new materialisations since the cursor)."""
    new_cursor = dict(cursor)
    changed = []
    for key in keys:
        after = cursor.get(_key_str(key))
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=after), limit=1, ascending=False)
        if result.records:
            new_cursor[_key_str(key)] = result.records[0].storage_id
            changed.append(_key_str(key))
    return new_cursor, changed


def _alerts_sensor(name: str, minimum_interval_seconds: int, description: str):
    """A sensor that requests `alerts_job` and runs from the start."""
    return dg.sensor(name=name, job=alerts_job, minimum_interval_seconds=minimum_interval_seconds,
                     default_status=dg.DefaultSensorStatus.RUNNING, description=description)


@_alerts_sensor(
    "alerts_on_new_data", minimum_interval_seconds=60,
    description="Requests an alerts evaluation run when the daily-metrics mart or the demand forecast "
                "has new materialisations.",
)
def alerts_on_new_data(context: dg.SensorEvaluationContext):
    cursor = json.loads(context.cursor) if context.cursor else {}
    new_cursor, changed = new_materializations(context.instance, cursor)
    if not changed:
        return dg.SkipReason("no new materialisations of the marts or the forecast")
    run_key = "new_data:" + ",".join(f"{k}={new_cursor[k]}" for k in sorted(new_cursor))
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=run_key, tags={"nightjar/alerts_trigger": ",".join(changed)})],
        cursor=json.dumps(new_cursor, sort_keys=True),
    )


@_alerts_sensor(
    "alerts_housekeeping", minimum_interval_seconds=300,
    description="Requests an alerts run when a mart is stale beyond its freshness policy, or when "
                "notifications are waiting for a retry.",
)
def alerts_housekeeping(context: dg.SensorEvaluationContext):
    from nightjar.alerts.rules import load_rules

    now = time.time()
    today = datetime.fromtimestamp(now, timezone.utc).date().isoformat()
    requests = []
    ruleset = load_rules(get_settings().alerts_file)
    for policy in ruleset.freshness:
        ev = context.instance.get_latest_materialization_event(table_key(policy.table))
        if ev is None:
            continue  # never built: nothing to be stale yet
        age_h = (now - ev.timestamp) / 3600
        if age_h > policy.max_age_hours:
            requests.append(dg.RunRequest(
                run_key=f"freshness:{policy.name}:{today}",
                tags={"nightjar/alerts_trigger": f"freshness:{policy.name}"}))
    last = context.instance.fetch_materializations(ALERT_EVENTS, limit=1, ascending=False)
    if last.records:
        rec = last.records[0]
        md = rec.asset_materialization.metadata if rec.asset_materialization else {}
        pending = md.get("outbox_pending")
        nxt = md.get("outbox_next_attempt_at")
        pending_n = pending.value if pending is not None else 0
        nxt_s = nxt.value if nxt is not None else ""
        if pending_n and nxt_s and datetime.fromisoformat(nxt_s).timestamp() <= now:
            requests.append(dg.RunRequest(
                run_key=f"outbox_retry:{rec.storage_id}", run_config=_run_config(evaluate=False),
                tags={"nightjar/alerts_trigger": "outbox_retry"}))
    if not requests:
        return dg.SkipReason("marts fresh, no notifications due for retry")
    return requests


@dg.run_failure_sensor(
    name="alerts_on_run_failure",
    request_job=alerts_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Notifies about failed pipeline runs (through the alerts outbox).",
)
def alerts_on_run_failure(context: dg.RunFailureSensorContext):
    run = context.dagster_run
    message = context.failure_event.message or "run failed"
    for step_event in context.get_step_failure_events():
        if step_event.event_specific_data and step_event.event_specific_data.error:
            err = step_event.event_specific_data.error
            while err.cause is not None:  # the user's exception, not Dagster's wrapper
                err = err.cause
            message = f"step {step_event.step_key}: {err.message.strip()}"
            break
    config = load_config()
    message = config.redact(message)[:2000]
    if run.job_name == alerts_job.name:
        # The alerts run itself failed (maybe the warehouse): tell the channels directly.
        _send_direct(config, run.run_id, run.job_name, message)
        return dg.SkipReason(f"alerts job {run.run_id} failed; notified directly")
    return dg.RunRequest(
        run_key=f"run_failure:{run.run_id}",
        run_config=_run_config(failed_run_id=run.run_id, failed_job_name=run.job_name, failure_message=message),
        tags={"nightjar/alerts_trigger": "run_failure"},
    )


def _send_direct(config, run_id: str, job_name: str, message: str) -> None:
    from nightjar.alerts.channels import build_senders
    from nightjar.alerts.engine import run_failure_notification
    from nightjar.alerts.rules import load_rules

    try:
        ruleset = load_rules(get_settings().alerts_file)
    except Exception:  # an invalid rule file is a likely reason for the failure
        ruleset = None
    note = run_failure_notification(config, ruleset, run_id=run_id, job_name=job_name, error=message)
    senders = build_senders(config)
    for ch in dict.fromkeys(c if c in senders else "log" for c in note.channels):
        result = senders[ch].send(note.payload, note.key)
        if not result.ok:
            logger.error("direct run-failure notification on %s failed: %s", ch, config.redact(result.error))
            senders["log"].send(note.payload, note.key)
