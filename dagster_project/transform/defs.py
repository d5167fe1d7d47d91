import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from dagster_project.transform.assets import nightjar_dbt_models
from dagster_project.transform.project import dbt_project

# The dbt next to this interpreter, so the UI and `nightjar run` work without an activated venv.
_DBT = Path(sys.executable).parent / "dbt"

defs = dg.Definitions(
    assets=[nightjar_dbt_models],
    resources={"dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=str(_DBT) if _DBT.exists() else "dbt")},
)
