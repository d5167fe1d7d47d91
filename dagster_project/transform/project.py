"""The dbt project as Dagster sees it (kept in its own module, see ENVIRONMENT.md).

No `dbt parse` happens at import: under `dagster dev` `prepare_if_dev()` refreshes the
manifest; everywhere else `make` (or CI) runs `dbt parse` before Dagster loads.
"""
from __future__ import annotations

from dagster_dbt import DbtProject

from nightjar.settings import DBT_PROJECT_DIR

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()
