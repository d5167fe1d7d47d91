"""The nightly asset job.

Selection convention (documented in docs/ORCHESTRATION.md): the nightly job selects every
asset EXCEPT those tagged ``nightjar/cadence=weekly`` — the model-retraining assets, which
run on their own automation condition. So ingestion, dbt (staging, marts), ML scoring and
forecasts, alerts and reports are all in it, and a new asset joins the nightly run by
default; to keep one out, give it ``tags=CADENCE_WEEKLY`` (and its own automation).

The job is partitioned by the daily partitions of the dbt models; the unpartitioned assets
(ingestion: "load every new file / changed row"; ML, alerts, reports: "as of now") run in
the same run. Dagster 1.13 accepts unpartitioned assets in a partitioned asset job; it
only refuses two *different* partitions definitions in one job.
"""
import dagster as dg

from dagster_project.keys import CADENCE_TAG, CADENCE_WEEKLY
from dagster_project.orchestration.partitions import daily_partitions


NIGHTLY_SELECTION = dg.AssetSelection.all() - dg.AssetSelection.tag(CADENCE_TAG, CADENCE_WEEKLY[CADENCE_TAG])

nightly_job = dg.define_asset_job(
    name="nightly",
    selection=NIGHTLY_SELECTION,
    partitions_def=daily_partitions,
    tags={"nightjar/domain": "orchestration"},
    description=(
        "The whole chain for one day: dlt ingestion of new files and changed shop rows -> dbt build "
        "(staging, marts; incremental) -> churn scoring and demand forecast -> alert evaluation -> KPI "
        "report. Everything except assets tagged nightjar/cadence=weekly (model retraining). Run by the "
        "`nightly_schedule` for the day that just ended."
    ),
)
