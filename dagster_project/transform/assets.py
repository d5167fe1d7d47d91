"""dbt models as Dagster assets; dbt tests become asset checks.

The models are daily-partitioned (dagster_project/orchestration/partitions.py) with a
single-run backfill policy: a backfill of any date range is ONE `dbt build` whose vars
``backfill_start`` / ``backfill_end`` carry the range's time window (UTC), so the
incremental models reprocess the events of that window (dbt_project/macros/backfill.sql).
A run tagged ``nightjar/run_kind=nightly`` (the nightly schedule, `nightjar run`) passes
no window: the incremental models take only the rows newer than their watermark; when
nothing was loaded and no dbt file changed since the last successful build it skips dbt
altogether (nightjar/build_state.py).

After dbt finishes, one short read-only pass over the warehouse attaches row counts and
the min/max date of each built table to its materialisation (`dagster/row_count`,
`min_date`, `max_date`). It runs after dbt because DuckDB allows one process on the file
while dbt writes it, so dagster-dbt's `fetch_row_counts()` (which queries while dbt runs)
cannot be used here.
"""

import json
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource, dbt_assets

from dagster_project.orchestration.partitions import NIGHTLY, RUN_KIND_TAG, daily_partitions, utc_window
from dagster_project.resources import WAREHOUSE_POOL, WarehouseResource
from nightjar.marts_reader import refresh_views
from nightjar.pii_key import ENV_VAR as PII_ENV_VAR
from nightjar.pii_key import ensure_key_file, read_key
from nightjar.settings import Settings, environ_overrides
from nightjar.warehouse_lock import warehouse_lock
from nightjar.dbt_args import INCREMENTAL_BUILD_ARGS, nightly_dbt_args
from dagster_project.transform.project import dbt_project
from dagster_project.transform.translator import NightjarDbtTranslator
from nightjar import build_state

# The date column reported as min_date/max_date, first match wins.
DATE_COLUMNS = ("event_date", "session_date", "metric_date", "activity_date", "cohort_date", "cohort_week",
                "order_date")


class DbtBuildConfig(dg.Config):
    """Launchpad options of the dbt step (defaults: a normal run)."""

    full_refresh: bool = False  # `dbt build --full-refresh` (needed after changing session/bot vars)


def is_watermark_run(context: dg.AssetExecutionContext, config: DbtBuildConfig) -> bool:
    """A nightly-style run: only rows newer than the watermark, no backfill window."""
    return not config.full_refresh and (
        not context.has_partition_key_range or context.run.tags.get(RUN_KIND_TAG) == NIGHTLY
    )


def dbt_build_args(context: dg.AssetExecutionContext, config: DbtBuildConfig,
                   warehouse: Path | None = None) -> tuple[list[str], str]:
    """The dbt arguments of this run and a short description of the mode. Call it while
    holding the warehouse lock: a nightly run's test window is read from the warehouse."""
    if config.full_refresh:
        return ["build", "--full-refresh"], "full refresh"
    if is_watermark_run(context, config):
        # the same arguments the benchmark harness measures (nightjar/dbt_args.py)
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
    dagster_dbt_translator=NightjarDbtTranslator(),
    pool=WAREHOUSE_POOL,
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def nightjar_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource,
                        config: DbtBuildConfig):
    settings = warehouse.settings()
    state_file = settings.artifacts_dir / "dbt_build_state.json"
    selected = [key.to_user_string() for key in context.selected_asset_keys]
    with warehouse.lock(purpose="dbt build"), engine_lock(settings):
        if settings.engine == "spark":
            # the lake's raw tables as views: the raw fingerprint and the nightly test window
            # below read them (and the Spark tables) from the DuckDB file
            context.log.info(f"views over parquet before dbt: {refresh_views(settings)}")
        raw, project = _fingerprints(warehouse.path, settings.duckdb_config())
        if is_watermark_run(context, config) and build_state.nothing_to_build(
            build_state.read_state(state_file), raw, project, selected
        ):
            # No output: Dagster records the models as not materialised in this run and skips
            # what is downstream of them (scores, forecasts, alerts, report).
            context.log.info(f"dbt build skipped: {build_state.SKIP_REASON}")
            return
        args, mode = dbt_build_args(context, config, warehouse.path)
        # staging pseudonymises PII with this key; the first night creates it (no default key)
        ensure_key_file(warehouse.settings().pii_key_file)
        context.log.info(f"dbt {' '.join(args)}  [{mode}]")
        # dbt's process starts inside cli() with a copy of this environment
        with environ_overrides(dbt_engine_env(settings)):
            invocation = dbt.cli(args, context=context, raise_on_error=False)
        # Buffer the events: the warehouse can be read only once dbt has released it.
        events = list(invocation.stream())
        started = time.monotonic()
        if settings.engine == "spark":
            # ML, alerts and the report read the new parquet files through these views
            context.log.info(f"views over parquet after dbt: {refresh_views(settings)}")
        stats = warehouse_stats(warehouse.path, invocation.manifest, events)
        if invocation.is_successful() and raw:
            build_state.write_state(state_file, raw, project, selected)
    context.log.info(f"row counts and date ranges of {len(stats)} tables in {time.monotonic() - started:.2f} s")
    for event in events:
        if isinstance(event, dg.Output):
            extra = {"dbt_mode": mode, **stats.get(_unique_id(event), {})}
            event = event.with_metadata({**event.metadata, **extra})
        yield event
    if not invocation.is_successful():
        raise invocation.get_error() or RuntimeError("dbt build failed")


def engine_lock(settings: Settings):
    """Under spark, the lock of the embedded Derby metastore (one process at a time): besides
    the warehouse lock, so a manual `python -m nightjar.warehouse_lock <metastore_db> -- dbt
    build` of another data dir on the same Spark warehouse waits too."""
    if settings.engine != "spark":
        return nullcontext()
    # the lock file lives beside the metastore (elsewhere only if that folder is read-only)
    settings.spark_metastore_dir.parent.mkdir(parents=True, exist_ok=True)
    return warehouse_lock(settings.spark_metastore_dir, purpose="dbt build (Spark metastore)")


def dbt_engine_env(settings: Settings) -> dict[str, str]:
    """Environment of the dbt process beyond Settings.env(): under spark the generated
    spark-defaults.conf (NIGHTJAR_SPARK_CONF) and the PII key, which the Spark profile reads
    only from NIGHTJAR_PII_KEY (it has no plugin to read the key file)."""
    if settings.engine != "spark":
        return {}
    settings.write_spark_conf()
    env = {"SPARK_CONF_DIR": str(settings.spark_conf_dir)}
    key = read_key(settings.pii_key_file)
    if key:
        env[PII_ENV_VAR] = key
    return env


def _fingerprints(path: Path, config: Mapping[str, Any]) -> tuple[dict[str, list[Any]], str]:
    """The raw layer's and the dbt project's fingerprints (empty raw: no warehouse yet)."""
    project = build_state.project_fingerprint()
    if not path.exists():
        return {}, project
    try:
        con = duckdb.connect(str(path), read_only=True, config=dict(config))
    except duckdb.Error:
        return {}, project
    try:
        return build_state.raw_fingerprint(con), project
    finally:
        con.close()


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

