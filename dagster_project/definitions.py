"""The one Definitions object of Nightjar, loaded by workspace.yaml.

Each domain package (ingest, transform, ml, alerts, report, orchestration) exposes
its own `defs`; they are merged here so that adding a domain never touches the others.
"""
import dagster as dg

from dagster_project.alerts import defs as alerts
from dagster_project.ingest import defs as ingest
from dagster_project.ml import defs as ml
from dagster_project.orchestration import defs as orchestration
from dagster_project.report import defs as report
from dagster_project.resources import WarehouseResource
from dagster_project.transform import defs as transform

defs = dg.Definitions.merge(
    dg.Definitions(
        resources={"warehouse": WarehouseResource()},
        # Warehouse steps run one at a time anyway (one DuckDB writer); a process per step
        # would only add 10-60 s of code loading to each of them.
        executor=dg.in_process_executor,
    ),
    ingest.defs,
    transform.defs,
    ml.defs,
    alerts.defs,
    report.defs,
    orchestration.defs,
)
