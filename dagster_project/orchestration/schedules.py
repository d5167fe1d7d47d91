"""The nightly schedule: the whole chain for the day that just ended."""
import dagster as dg

from dagster_project.orchestration.jobs import nightly_job
from dagster_project.orchestration.partitions import NIGHTLY, RUN_KIND_TAG, day_that_ended
from nightjar.settings import Settings, get_settings


def build_nightly_schedule(settings: Settings | None = None, job=nightly_job) -> dg.ScheduleDefinition:
    """`NIGHTJAR_NIGHTLY_CRON` (default "0 2 * * *") in `NIGHTJAR_TIMEZONE` (default UTC).

    Each tick requests yesterday's partition (in that timezone), tagged
    ``nightjar/run_kind=nightly`` so dbt takes its watermark path (new rows only).
    Registered STOPPED: turn it on in the UI (Automation) or with
    `dagster schedule start nightly_schedule`.
    """
    s = settings or get_settings()

    @dg.schedule(
        name="nightly_schedule",
        job=job,
        cron_schedule=s.nightly_cron,
        execution_timezone=s.timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Runs the `nightly` job at '{s.nightly_cron}' ({s.timezone}) for the day that just ended.",
    )
    def nightly_schedule(context: dg.ScheduleEvaluationContext):
        at = context.scheduled_execution_time
        if at is None:  # evaluated outside a tick (tests, "preview" in the UI)
            from datetime import datetime, timezone

            at = datetime.now(timezone.utc)
        key = day_that_ended(at, s.timezone)
        if key < s.partitions_start:
            return dg.SkipReason(f"{key} is before the first partition ({s.partitions_start})")
        return dg.RunRequest(
            partition_key=key,
            tags={RUN_KIND_TAG: NIGHTLY},
        )

    return nightly_schedule


nightly_schedule = build_nightly_schedule()
