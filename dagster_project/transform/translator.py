"""Maps dbt nodes to Dagster assets: groups, owners, and raw-source keys."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtProject

from dagster_project.keys import raw_asset_key, table_key

# dbt schema (config `schema`) -> Dagster asset group; intermediate models are
# implementation detail of staging-level stitching, so they sit with staging.
_GROUPS = {"staging": "staging", "intermediate": "staging", "marts": "marts"}


class NightjarDbtTranslator(DagsterDbtTranslator):
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
        return spec.replace_attributes(
            key=table_key(f"{schema}.{props['name']}"),
            group_name=_GROUPS.get(schema, "staging"),
            owners=owners,
        )
