"""The ML domain's definitions (merged by dagster_project/definitions.py)."""
import dagster as dg

from dagster_project.ml.assets import ML_ASSETS
from dagster_project.ml.checks import ML_CHECKS

defs = dg.Definitions(assets=ML_ASSETS, asset_checks=ML_CHECKS)
