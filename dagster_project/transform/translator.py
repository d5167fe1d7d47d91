"""Maps dbt nodes to Dagster assets: groups, owners, raw-source keys, mart freshness."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtProject

from dagster_project.keys import raw_asset_key, table_key

# dbt schema (config `schema`) -> Dagster asset group; intermediate models are
# implementation detail of staging-level stitching, so they sit with staging; the dq_*
# data-quality measures (schema monitoring) are their own group.
_GROUPS = {"staging": "staging", "intermediate": "staging", "marts": "marts", "monitoring": "monitoring"}

# Marts are rebuilt by the nightly run: warn when one is more than a day (+1 h slack) old,
# fail past 26 h (the nightly run missed its slot, or failed).
MARTS_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26), warn_window=timedelta(hours=25))


class NightjarDbtTranslator(DagsterDbtTranslator):
    """No automation condition on the dbt models: the nightly job ingests first and then
    builds; an eager condition would start a run on every ingestion materialisation and
    fight the nightly run for the single warehouse slot."""

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] == "source":
            # The same function names the dlt ingestion assets: one lineage graph.
            return spec.replace_attributes(key=raw_asset_key(props["name"], props["source_name"]))
        schema = props.get("config", {}).get("schema") or props.get("schema") or "staging"
        owners = props.get("config", {}).get("meta", {}).get("owners") or ["team:analytics"]
        group = _GROUPS.get(schema, "staging")
        return spec.replace_attributes(
            key=table_key(f"{schema}.{props['name']}"),
            group_name=group,
            owners=owners,
            freshness_policy=MARTS_FRESHNESS if group == "marts" else spec.freshness_policy,
        )
