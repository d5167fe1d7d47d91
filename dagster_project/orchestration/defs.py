"""The orchestration domain's definitions (merged by dagster_project/definitions.py):
the `nightly` job and the `nightly_schedule`. The daily partitions live on the dbt assets
(dagster_project/transform/assets.py) and come from partitions.py."""
import dagster as dg

from dagster_project.orchestration.jobs import nightly_job
from dagster_project.orchestration.schedules import nightly_schedule

defs = dg.Definitions(jobs=[nightly_job], schedules=[nightly_schedule])
