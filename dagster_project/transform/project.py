"""The dbt project as Dagster sees it, in one module that every dbt asset and resource imports.

No `dbt parse` happens at import: under `dagster dev` the manifest is refreshed here;
everywhere else `make manifest` (or CI) runs `dbt parse` before Dagster loads, once per
engine: `target/manifest.json` (profile target `dev`, DuckDB) and
`target-spark/manifest.json` (target `spark`). NIGHTJAR_ENGINE picks which one the assets
come from; both hold the same models, so the asset keys are the same.
"""
from __future__ import annotations

import sys
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject
from dagster_dbt.dbt_project import DagsterDbtProjectPreparer

from nightjar.settings import DBT_PROJECT_DIR, get_settings

# The dbt installed beside this interpreter: the UI and `nightjar run` must work from a
# shell where the venv is not activated (dagster-dbt's default looks up `dbt` on PATH).
_VENV_DBT = Path(sys.executable).parent / "dbt"
DBT_EXECUTABLE = str(_VENV_DBT) if _VENV_DBT.exists() else "dbt"


class VenvDbtPreparer(DagsterDbtProjectPreparer):
    """dagster-dbt's preparer, running `dbt parse` with :data:`DBT_EXECUTABLE`."""

    def _prepare_manifest(self, project: DbtProject) -> None:
        DbtCliResource(project_dir=project, dbt_executable=DBT_EXECUTABLE).cli(
            self._prepare_project_cli_args, target_path=project.target_path
        ).wait()
        self._invalidate_seeds_in_partial_parse(project)


# profile target and manifest folder of each engine (the Makefile's MANIFEST and SPARK_MANIFEST);
# DuckDB keeps the profile's default target (`dev`)
ENGINE_TARGETS = {"duckdb": (None, "target"), "spark": ("spark", "target-spark")}


def project_for(engine: str) -> DbtProject:
    target, target_path = ENGINE_TARGETS[engine]
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target=target,
                      target_path=target_path)


dbt_project = project_for(get_settings().engine)
VenvDbtPreparer().prepare_if_dev(dbt_project)
