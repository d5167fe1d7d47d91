"""The nightly KPI report: plain Python over DuckDB (no Dagster imports).

- :func:`kpi_summary` — ``[(kpi, value, change_vs_last_week), ...]`` for `nightjar run`.
- :func:`build_report` / :func:`generate_report` — the self-contained HTML report.
"""
from nightjar.report.html_report import (
    NOT_AVAILABLE,
    SOURCE_TABLES,
    Report,
    Section,
    build_report,
    generate_report,
    write_report,
)
from nightjar.report.kpi import (
    KPIS,
    KpiRow,
    format_kpi_summary,
    kpi_details,
    kpi_summary,
    kpis_markdown,
    last_complete_day,
)

__all__ = [
    "KPIS",
    "NOT_AVAILABLE",
    "SOURCE_TABLES",
    "KpiRow",
    "Report",
    "Section",
    "build_report",
    "format_kpi_summary",
    "generate_report",
    "kpi_details",
    "kpi_summary",
    "kpis_markdown",
    "last_complete_day",
    "write_report",
]
