"""The KPI report asset: renders `nightjar.report` over the warehouse, read-only."""

import dagster as dg

from dagster_project.keys import (
    ALERT_EVENTS, CHURN_SCORES, CUSTOMER_VALUE, DEMAND_FORECAST, DQ_TABLES, FCT_CHANNEL_DAILY, FCT_DAILY_METRICS, FCT_FUNNEL_DAILY,
    FCT_RETENTION_WEEKLY, KPI_REPORT,
)
from dagster_project.resources import WAREHOUSE_POOL, WarehouseResource
from nightjar.report import generate_report


# The tables the report reads. Retention: the weekly mart (the daily one is a fallback
# read when present, but is not a dependency: the report should not wait on it). The
# data-quality section reads the monitoring.dq_* measures.
REPORT_DEPS = [FCT_DAILY_METRICS, FCT_RETENTION_WEEKLY, FCT_FUNNEL_DAILY, FCT_CHANNEL_DAILY, DEMAND_FORECAST,
               CHURN_SCORES, CUSTOMER_VALUE, ALERT_EVENTS, *DQ_TABLES]


@dg.asset(
    key=KPI_REPORT,
    group_name="reports",
    kinds={"html", "duckdb"},
    deps=REPORT_DEPS,
    # A read-only DuckDB connection still conflicts with another process writing the
    # file, so the report queues behind warehouse writers like they queue behind each other.
    pool=WAREHOUSE_POOL,
    owners=["team:analytics"],
    description=(
        "Self-contained HTML KPI report (DAU/WAU/MAU, sessions and conversion, revenue with the "
        "demand forecast, retention heatmap, funnel, channels and attribution, churn risk, recent "
        "alerts) written to `<data dir>/reports/kpi_report_<date>.html` and `kpi_report_latest.html`."
    ),
)
def kpi_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    settings = warehouse.settings()
    # The pool covers runs of one instance; the file lock also covers a `nightjar run`.
    with warehouse.lock(purpose="kpi report"):
        report, dated, latest = generate_report(settings.warehouse, settings.reports_dir, config=settings.duckdb_config())
    for sid in report.unavailable_sections:
        context.log.warning(f"report section '{sid}' is not available yet (its tables are missing or empty)")
    context.log.info(f"KPI report written to {dated}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(dated)),
            "latest_path": dg.MetadataValue.path(str(latest)),
            "url": dg.MetadataValue.url(dated.resolve().as_uri()),
            "as_of": dg.MetadataValue.text(report.as_of.isoformat() if report.as_of else "no data"),
            "kpis": dg.MetadataValue.md(report.kpis_markdown),
            "sections_available": dg.MetadataValue.int(len(report.available_sections)),
            "sections_unavailable": dg.MetadataValue.text(", ".join(report.unavailable_sections) or "none"),
            "size_bytes": dg.MetadataValue.int(dated.stat().st_size),
        }
    )
