import dagster as dg

from dagster_project.alerts.assets import alert_events
from dagster_project.alerts.sensors import alerts_housekeeping, alerts_job, alerts_on_new_data, alerts_on_run_failure

defs = dg.Definitions(
    assets=[alert_events],
    jobs=[alerts_job],
    sensors=[alerts_on_new_data, alerts_housekeeping, alerts_on_run_failure],
)
