"""dbt models as Dagster assets; dbt tests become asset checks."""

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from dagster_project.resources import WAREHOUSE_POOL
from dagster_project.transform.project import dbt_project
from dagster_project.transform.translator import NightjarDbtTranslator


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=NightjarDbtTranslator(),
    pool=WAREHOUSE_POOL,
)
def nightjar_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    yield from dbt.cli(["build"], context=context).stream()
