"""`nightjar run`: materialise the Dagster asset graph in process, then summarise."""
from __future__ import annotations

import os

import dagster as dg

from nightjar.settings import get_settings
from nightjar.summary import format_summary


def _instance() -> dg.DagsterInstance:
    # A persistent instance when the user has one (run history shows in the UI),
    # otherwise a throwaway one, as `dagster asset materialize` would do.
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def run_pipeline(selection: str = "*", print_summary: bool = True) -> dg.ExecuteInProcessResult:
    from dagster_project.definitions import defs

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    job = defs.resolve_implicit_global_asset_job_def()
    asset_graph = defs.resolve_asset_graph()
    keys = dg.AssetSelection.from_string(selection).resolve(asset_graph)
    # The dbt models are daily-partitioned: run them for the latest partition (yesterday)
    # as the nightly schedule does, i.e. on dbt's watermark path (every new row, any date).
    partition_key, tags = None, {}
    partitioned = [asset_graph.get(k).partitions_def for k in keys if asset_graph.get(k).partitions_def is not None]
    if partitioned:
        from dagster_project.orchestration.partitions import NIGHTLY, RUN_KIND_TAG

        partition_key, tags = partitioned[0].get_last_partition_key(), {RUN_KIND_TAG: NIGHTLY}
    with _instance() as instance:
        result = job.execute_in_process(
            instance=instance,
            asset_selection=list(keys),
            partition_key=partition_key,
            tags=tags,
            raise_on_error=False,
            # Step-level INFO lines only; DEBUG engine chatter drowns the summary.
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        )
    if print_summary:
        print(format_summary(settings))
        if not result.success:
            failed = [e.step_key for e in result.all_events if e.is_step_failure]
            print(f"\nRun FAILED in steps: {', '.join(failed)}")
    return result
