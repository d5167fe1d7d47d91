"""The alerts evaluation asset: evaluates new metric dates, then delivers the outbox."""

from datetime import datetime, timezone

import dagster as dg

from dagster_project.keys import ALERT_EVENTS, DEMAND_FORECAST, DQ_TABLES, FCT_DAILY_METRICS, table_key
from dagster_project.resources import WAREHOUSE_POOL, WarehouseResource
from nightjar.alerts import engine
from nightjar.alerts.config import load_config
from nightjar.alerts.ledger import DeliveredLedger
from nightjar.alerts.rules import load_rules

ALERTS_GROUP = "alerts"


class AlertsRunConfig(dg.Config):
    """Set by the sensors; the defaults are a normal evaluation + delivery run."""

    evaluate: bool = True  # False: only deliver due outbox rows (retry runs)
    failed_run_id: str = ""  # set by the run-failure sensor
    failed_job_name: str = ""
    failure_message: str = ""
    max_wait_seconds: float = 20.0  # how long one run waits for retries that fall due


@dg.asset(
    key=ALERT_EVENTS,
    group_name=ALERTS_GROUP,
    deps=[FCT_DAILY_METRICS, DEMAND_FORECAST, *DQ_TABLES],
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "python"},
    owners=["team:analytics"],
    description="Evaluates the alert rules for every not yet evaluated metric date (state, episodes and "
                "events in the `alerts` schema) and delivers the notification outbox.",
)
def alert_events(context: dg.AssetExecutionContext, config: AlertsRunConfig,
                 warehouse: WarehouseResource) -> dg.MaterializeResult:
    settings = warehouse.settings()
    ruleset = load_rules(settings.alerts_file)
    alerts_config = load_config()
    materialized_at: dict[str, datetime] = {}
    for policy in ruleset.freshness:
        ev = context.instance.get_latest_materialization_event(table_key(policy.table))
        if ev is not None:
            materialized_at[policy.table] = datetime.fromtimestamp(ev.timestamp, timezone.utc)
    with warehouse.connect() as con:
        if config.failed_run_id:
            key = engine.enqueue_run_failure(con, ruleset, alerts_config, run_id=config.failed_run_id,
                                             job_name=config.failed_job_name, error=config.failure_message)
            context.log.info(f"queued run-failure notification {key}")
        summary = engine.run_alerts(con, ruleset, alerts_config, run_id=context.run_id,
                                    evaluate=config.evaluate, max_wait_seconds=config.max_wait_seconds,
                                    materialized_at=materialized_at,
                                    ledger=DeliveredLedger(settings.alerts_ledger))
    for rule, d, transition in summary.transitions:
        context.log.info(f"{rule}: {transition} on {d}")
    md = summary.as_metadata()
    md["rules_file"] = str(settings.alerts_file)
    return dg.MaterializeResult(metadata=md)
