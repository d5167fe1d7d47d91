"""A short, readable account of a run (printed after `nightjar run` / `make run`).

Tables and row counts, yesterday's KPIs against the same day last week, model quality,
alerts fired, and where the report and the UI are.
"""
from __future__ import annotations

import duckdb

from nightjar.report.data_shape import DataShape, data_shape
from nightjar.settings import Settings
from nightjar.marts_reader import connect

SCHEMAS = ("raw", "staging", "intermediate", "marts", "ml", "alerts")


def _tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    rows = con.execute(
        """
        select table_schema, table_name from information_schema.tables
        where table_schema in (select unnest(?::varchar[]))
          and table_name not like '\\_dlt%' escape '\\'
        """,
        [list(SCHEMAS)],
    ).fetchall()
    order = {s: i for i, s in enumerate(SCHEMAS)}
    return sorted(rows, key=lambda r: (order[r[0]], r[1]))


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row counts of every Nightjar table, keyed `schema.table`, in schema order."""
    return {f"{s}.{t}": con.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0] for s, t in _tables(con)}


def _counts_block(counts: dict[str, int]) -> list[str]:
    width = max(len(k) for k in counts)
    lines = [f"{'table'.ljust(width)}  {'rows':>12}"]
    lines += [f"{name.ljust(width)}  {n:>12,}" for name, n in counts.items()]
    rejected = counts.get("raw.events_rejected", 0)
    read = counts.get("raw.events", 0) + rejected
    if read:
        lines += ["", f"Quarantined event lines: {rejected:,} ({rejected / read:.3%} of {read:,} read)"]
    return lines


def _models_block(settings: Settings, shape: DataShape) -> list[str]:
    from ml.registry import ModelIntegrityError, ModelRegistry

    registry = ModelRegistry.in_artifacts(settings.artifacts_dir)
    if shape.has_events and not shape.has_orders:
        # an events-only shop: both models learn from orders
        return ["Churn model: none (churn is learnt from shop orders; no orders loaded)",
                "Demand forecast: none (it forecasts shop orders, units and revenue; no orders loaded)"]
    lines: list[str] = []
    churn, refused = None, None
    try:
        churn = registry.promoted("churn")
    except ModelIntegrityError as exc:  # scoring already failed on it; say why instead of crashing the summary
        refused = exc
    if refused is not None:
        lines.append(f"Churn model: refused ({refused})")
    elif churn is None:
        lines.append("Churn model: none promoted yet (too little history, or no model beat the base rate)")
    else:
        # the champion that scores: the candidate, or the baseline that won its evaluation
        kind = (registry.promoted_record("churn") or {}).get("model_kind", "candidate")
        test = churn.metrics.get("test", {}).get(kind, {})
        lines.append(
            f"Churn model {churn.version} ({kind}): ROC-AUC {test.get('roc_auc', float('nan')):.3f}, "
            f"PR-AUC {test.get('pr_auc', float('nan')):.3f}, Brier {test.get('brier', float('nan')):.3f}"
        )
    selection = registry.promoted("demand_forecast_selection")
    if selection is not None:
        # metrics: {series_label: {"champion": model, "metrics": {model: {"mase": ...}}}}
        by_model: dict[str, int] = {}
        for record in selection.metrics.values():
            champion = record.get("champion") or "none (too little history)"
            by_model[champion] = by_model.get(champion, 0) + 1
        total = selection.metrics.get("total/orders", {})
        mase = total.get("metrics", {}).get(total.get("champion"), {}).get("mase")
        mix = ", ".join(f"{m} {n}" for m, n in sorted(by_model.items()))
        lines.append(
            f"Demand forecast {selection.version}: {len(selection.metrics)} series, champions by backtest MASE: {mix}"
            + (f"; total orders MASE {mase:.2f} ({total['champion']})" if mase is not None else "")
        )
    return lines


def _alerts_block(con: duckdb.DuckDBPyConnection, counts: dict[str, int]) -> list[str]:
    if "alerts.alert_episodes" not in counts:
        return ["Alerts: not evaluated yet"]
    rows = con.execute(
        """
        select rule_name, severity, status, started_date, fired_date, resolved_date
        from alerts.alert_episodes where fired_date is not null
        order by fired_date desc limit 10
        """
    ).fetchall()
    if not rows:
        return ["Alerts: none fired"]
    lines = [f"Alerts fired (latest {len(rows)}):"]
    for rule, severity, status, _started, fired, resolved in rows:
        until = f", resolved {resolved}" if resolved else ""
        lines.append(f"  {fired}  {rule:<24} {severity:<8} {status}{until}")
    return lines


def _engine_lines(settings: Settings) -> list[str]:
    """Under spark, where the tables really are (the warehouse file holds views over them)."""
    if settings.engine != "spark":
        return []
    return [f"Engine: Spark ({settings.spark_master}); tables in {settings.spark_warehouse}, raw lake "
            f"{settings.lake_url} (read here through views)"]


def format_summary(settings: Settings) -> str:
    if not settings.warehouse.exists():
        return f"Warehouse {settings.warehouse} does not exist yet"
    from nightjar.report.kpi import format_kpi_summary

    # under the warehouse lock: another `nightjar run` may be writing the file
    with connect(settings, read_only=True, purpose="run summary") as con:
        counts = table_counts(con)
        if not counts:
            return f"Warehouse {settings.warehouse} is empty"
        shape = data_shape(con)
        lines = [f"Warehouse: {settings.warehouse}", *_engine_lines(settings), f"Data: {shape.label}", "",
                 *_counts_block(counts), ""]
        lines += [format_kpi_summary(con), ""]
        lines += _models_block(settings, shape)
        lines += ["", *_alerts_block(con, counts)]
    report = settings.reports_dir / "kpi_report_latest.html"
    lines.append("")
    if report.exists():
        lines.append(f"KPI report: file://{report}")
    lines.append(f"Dagster UI: `make ui`, then {settings.ui_url}")
    return "\n".join(lines)


def format_run_account(result, selected_keys, window: tuple[str, str] | None) -> str:
    """What this run did and did not do: materialised, skipped and why, partitions covered."""
    from dagster import DagsterEventType

    materialised = {e.asset_key for e in result.all_events if e.event_type == DagsterEventType.ASSET_MATERIALIZATION}
    skipped_steps = sorted(e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_SKIPPED)
    not_built = [k for k in selected_keys if k not in materialised]
    dbt_keys = [k for k in not_built if k.path[0] in ("staging", "intermediate", "marts")]
    built_days = f", daily partitions {window[0]}..{window[1]}" if window and not dbt_keys else ""
    lines = ["", f"This run: {len(materialised)} of {len(selected_keys)} selected assets materialised{built_days}"]
    failed = {e.step_key for e in result.all_events if e.is_step_failure}
    if dbt_keys and not {"nightjar_dbt_models"} & (set(skipped_steps) | failed):
        from nightjar.build_state import SKIP_REASON

        lines.append(f"  skipped dbt build ({len(dbt_keys)} models): {SKIP_REASON}")
    if skipped_steps:
        lines.append(f"  skipped (their inputs were not rebuilt in this run): {', '.join(skipped_steps)}")
    # assets that ran but had nothing to do (e.g. churn without orders): their reason
    for event in result.all_events:
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            reason = event.materialization.metadata.get("skip_reason")
            if reason is not None:
                lines.append(f"  {event.asset_key.to_user_string()}: nothing produced ({getattr(reason, 'value', reason)})")
    return "\n".join(lines)
