"""`nightjar run`: materialise the Dagster asset graph in process, then summarise.

Runs go to the persistent instance of `nightjar.dagster_home` (the one `make ui` shows),
recorded against the daily partitions they build: the days not built yet through the last
landing day (on the first run, all of them), else yesterday as the nightly schedule does.
"""
from __future__ import annotations

import os

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from nightjar.dagster_home import close_orphaned_runs, launcher_tags, prepare_dagster_home
from nightjar.settings import environ_overrides, get_settings, landing_days
from nightjar.summary import format_run_account, format_summary


PLANNED_SUBSET = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


def partition_range(instance: dg.DagsterInstance, asset_graph, keys, partitions_def,
                    last_data_day: str | None) -> tuple[str, str] | None:
    """The days this run builds: from the first daily partition not yet materialised (by
    any selected partitioned asset) through the last day with landing data; the last
    partition (yesterday, as the nightly schedule runs) when there is nothing older, or
    no landing data at all (an orders-only shop: the partitions follow the landing days,
    and recording years of empty ones would only cost time)."""
    last = partitions_def.get_last_partition_key()
    if last is None:
        return None
    if last_data_day is None:
        return last, last
    end = min(last, last_data_day)
    all_days = set(partitions_def.get_partition_keys())
    missing: set[str] = set()
    for key in keys:
        if asset_graph.get(key).partitions_def is not None:
            missing |= all_days - instance.get_materialized_partitions(key)
    start = min(missing, default=None)
    return (start, end) if start is not None and start <= end else (last, last)


def run_pipeline(selection: str = "*", print_summary: bool = True) -> dg.ExecuteInProcessResult:
    from dagster_project.definitions import defs
    from dagster_project.orchestration.partitions import NIGHTLY, RUN_KIND_TAG

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # One "planned" event per asset for the run's partition range instead of one per day and
    # asset: ~12k fewer events on a first run over two years of history.
    environ = {**settings.env(), PLANNED_SUBSET: os.environ.get(PLANNED_SUBSET, "true")}
    job = defs.resolve_implicit_global_asset_job_def()
    asset_graph = defs.resolve_asset_graph()
    keys = dg.AssetSelection.from_string(selection).resolve(asset_graph)
    # Subprocesses (dbt runs in dbt_project/) see the settings as resolved here: a relative
    # NIGHTJAR_DATA_DIR means the caller's working directory, not theirs.
    with environ_overrides(environ), dg.DagsterInstance.from_config(str(prepare_dagster_home(settings))) as instance:
        close_orphaned_runs(instance)
        tags = launcher_tags()
        partitioned = [asset_graph.get(k).partitions_def for k in keys if asset_graph.get(k).partitions_def is not None]
        days = landing_days(settings.events_dir, settings.segment_dir)
        window = partition_range(instance, asset_graph, keys, partitioned[0], days[-1] if days else None) \
            if partitioned else None
        if window:
            # dbt's watermark path (every new row, any date), as the nightly schedule runs it,
            # recorded against the days it built.
            tags.update({RUN_KIND_TAG: NIGHTLY, ASSET_PARTITION_RANGE_START_TAG: window[0],
                         ASSET_PARTITION_RANGE_END_TAG: window[1]})
        result = job.execute_in_process(
            instance=instance,
            asset_selection=list(keys),
            tags=tags,
            raise_on_error=False,
            # Step-level INFO lines only; DEBUG engine chatter drowns the summary.
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        )
    if print_summary:
        print(format_summary(settings))
        print(format_run_account(result, keys, window))
        if not result.success:
            failed = [e.step_key for e in result.all_events if e.is_step_failure]
            print(f"\nRun FAILED in steps: {', '.join(failed)}")
    return result
