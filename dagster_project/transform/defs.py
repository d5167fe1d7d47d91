import dagster as dg
from dagster_dbt import DbtCliResource

from dagster_project.transform.assets import nightjar_dbt_models
from dagster_project.transform.project import DBT_EXECUTABLE, dbt_project

defs = dg.Definitions(
    assets=[nightjar_dbt_models],
    resources={"dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)},
)
