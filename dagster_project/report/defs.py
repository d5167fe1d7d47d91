import dagster as dg

from dagster_project.report.assets import kpi_report

defs = dg.Definitions(assets=[kpi_report])
