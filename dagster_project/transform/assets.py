"""dbt models as Dagster assets; dbt tests become asset checks.

The models are daily-partitioned (dagster_project/orchestration/partitions.py) with a
single-run backfill policy: a backfill of any date range is ONE `dbt build` whose vars
``backfill_start`` / ``backfill_end`` carry the range's time window (UTC), so the
incremental models reprocess the events of that window (dbt_project/macros/backfill.sql).
A run tagged ``nightjar/run_kind=nightly`` (the nightly schedule, `nightjar run`) passes
no window: the incremental models take only the rows newer than their watermark.

After dbt finishes, one short read-only pass over the warehouse attaches row counts and
the min/max date of each built table to its materialisation (`dagster/row_count`,
`min_date`, `max_date`). It runs after dbt because DuckDB allows one process on the file
while dbt writes it, so dagster-dbt's `fetch_row_counts()` (which queries while dbt runs)
cannot be used here.
"""

import json
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from dagster_project.orchestration.partitions import NIGHTLY, RUN_KIND_TAG, daily_partitions, utc_window
from dagster_project.resources import WAREHOUSE_POOL, WarehouseResource
from dagster_project.transform.nightly import INCREMENTAL_BUILD_ARGS, nightly_dbt_args
from dagster_project.transform.project import dbt_project
from dagster_project.transform.translator import NightjarDbtTranslator

# Marts are rebuilt by the nightly run: warn when one is more than a day (+1 h slack) old,
# fail past 26 h (the nightly run missed its slot, or failed).
MARTS_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26), warn_window=timedelta(hours=25))

# The date column reported as min_date/max_date, first match wins.
DATE_COLUMNS = ("event_date", "session_date", "metric_date", "activity_date", "cohort_date", "cohort_week",
                "order_date")


class OrchestratedDbtTranslator(NightjarDbtTranslator):
    """The project's translator plus freshness policies on the marts.

    No automation condition on the dbt models: they are driven by the nightly job, which
    ingests first and then builds; an eager condition would start extra runs on every
    ingestion materialisation and fight the nightly run for the single warehouse slot.
    """

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if spec.group_name == "marts":
            spec = spec.replace_attributes(freshness_policy=MARTS_FRESHNESS)
        return spec


class DbtBuildConfig(dg.Config):
    """Launchpad options of the dbt step (defaults: a normal run)."""

    full_refresh: bool = False  # `dbt build --full-refresh` (needed after changing session/bot vars)


def dbt_build_args(context: dg.AssetExecutionContext, config: DbtBuildConfig,
                   warehouse: Path | None = None) -> tuple[list[str], str]:
    """The dbt arguments of this run and a short description of the mode. Call it while
    holding the warehouse lock: a nightly run's test window is read from the warehouse."""
    if config.full_refresh:
        return ["build", "--full-refresh"], "full refresh"
    if not context.has_partition_key_range or context.run.tags.get(RUN_KIND_TAG) == NIGHTLY:
        # the same arguments the benchmark harness measures (transform/nightly.py)
        args = nightly_dbt_args(warehouse)
        window = f", tests on rows loaded since {args[args.index('--event-time-start') + 1]}" \
            if "--event-time-start" in args else ""
        return args, f"incremental (watermark{window})"
    # A backfill rewrites old rows (old load times): its data tests check every row.
    start, end = utc_window(context.partition_time_window)
    keys = context.partition_key_range
    mode = f"backfill {keys.start}..{keys.end} (events in [{start}, {end}) UTC, plus new rows)"
    return [*INCREMENTAL_BUILD_ARGS, "--vars", json.dumps({"backfill_start": start, "backfill_end": end})], mode


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=OrchestratedDbtTranslator(),
    pool=WAREHOUSE_POOL,
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def nightjar_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource,
                        config: DbtBuildConfig):
    with warehouse.lock(purpose="dbt build"):
        args, mode = dbt_build_args(context, config, warehouse.path)
        context.log.info(f"dbt {' '.join(args)}  [{mode}]")
        invocation = dbt.cli(args, context=context, raise_on_error=False)
        # Buffer the events: the warehouse can be read only once dbt has released it.
        events = list(invocation.stream())
        started = time.monotonic()
        stats = warehouse_stats(warehouse.path, invocation.manifest, events)
    context.log.info(f"row counts and date ranges of {len(stats)} tables in {time.monotonic() - started:.2f} s")
    for event in events:
        if isinstance(event, dg.Output):
            extra = {"dbt_mode": mode, **stats.get(_unique_id(event), {})}
            event = event.with_metadata({**event.metadata, **extra})
        yield event
    if not invocation.is_successful():
        raise invocation.get_error() or RuntimeError("dbt build failed")


def _unique_id(event: Any) -> str | None:
    value = event.metadata.get("unique_id")
    return getattr(value, "text", value)


def warehouse_stats(path: Path | None, manifest: Mapping[str, Any], events: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """unique_id -> {dagster/row_count, min_date, max_date} for the tables built (views are
    skipped: counting one re-runs its query). Best effort: a failure only loses metadata."""
    if not path or not Path(path).exists():
        return {}
    nodes = manifest.get("nodes", {})
    targets = {}
    for event in events:
        uid = _unique_id(event) if isinstance(event, dg.Output) else None
        node = nodes.get(uid or "")
        if node and node.get("config", {}).get("materialized") in ("table", "incremental", "seed"):
            targets[uid] = node
    if not targets:
        return {}
    out: dict[str, dict[str, Any]] = {}
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return {}
    try:
        cols = {}
        for schema, table, column in con.execute(
            "select table_schema, table_name, column_name from information_schema.columns where data_type = 'DATE'"
        ).fetchall():
            cols.setdefault((schema, table), set()).add(column)
        for uid, node in targets.items():
            schema, name = node["schema"], node.get("alias") or node["name"]
            date_col = next((c for c in DATE_COLUMNS if c in cols.get((schema, name), ())), None)
            sel = "count(*)" + (f', min("{date_col}"), max("{date_col}")' if date_col else "")
            try:
                row = con.execute(f'select {sel} from "{schema}"."{name}"').fetchone()
            except duckdb.Error:
                continue
            md: dict[str, Any] = {"dagster/row_count": int(row[0])}
            if date_col:
                md.update(date_column=date_col, min_date=str(row[1]) if row[1] else "", max_date=str(row[2]) if row[2] else "")
            out[uid] = md
    finally:
        con.close()
    return out

