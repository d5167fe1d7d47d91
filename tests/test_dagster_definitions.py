"""The Dagster graph as a user sees it: one lineage from landing files to marts."""
import os

import dagster as dg
import pytest

from dagster_project.definitions import defs
from dagster_project.resources import WAREHOUSE_POOL
from dagster_project.transform.assets import nightjar_dbt_models


@pytest.fixture(scope="module")
def asset_graph():
    return defs.resolve_asset_graph()


def test_every_dbt_source_is_produced_by_an_ingestion_asset(asset_graph) -> None:
    ingestion_keys = {
        key for key in asset_graph.get_all_asset_keys()
        if asset_graph.get(key).group_name == "ingestion" and asset_graph.get(key).is_materializable
    }
    source_keys = {dep.asset_key for spec in nightjar_dbt_models.specs for dep in spec.deps} - set(
        nightjar_dbt_models.keys
    )
    assert source_keys, "the dbt models read no sources?"
    assert source_keys <= ingestion_keys, f"dbt sources with no ingestion asset: {source_keys - ingestion_keys}"
    # No dangling external assets: every node of the graph is materialisable by us.
    externals = [k for k in asset_graph.get_all_asset_keys() if not asset_graph.get(k).is_materializable]
    assert externals == []


def test_marts_reach_back_to_the_landing_files(asset_graph) -> None:
    sel = dg.AssetSelection.keys(dg.AssetKey(["marts", "fct_daily_metrics"])).upstream()
    keys = sel.resolve(asset_graph)
    assert dg.AssetKey(["raw", "events"]) in keys
    assert dg.AssetKey(["raw", "orders"]) in keys
    assert dg.AssetKey(["staging", "stg_events"]) in keys


def test_groups_and_owners(asset_graph) -> None:
    groups = {asset_graph.get(k).group_name for k in asset_graph.get_all_asset_keys()}
    assert {"ingestion", "staging", "marts"} <= groups
    for key in dg.AssetSelection.groups("staging", "marts").resolve(asset_graph):
        assert asset_graph.get(key).owners, f"{key} has no owner"


def test_warehouse_writers_share_one_pool() -> None:
    writers = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
    for assets_def in writers:
        for node in [assets_def.node_def] if assets_def.is_executable else []:
            assert node.pool == WAREHOUSE_POOL, f"{assets_def.keys} writes the warehouse outside the pool"


def test_dbt_tests_are_asset_checks(asset_graph) -> None:
    check_keys = nightjar_dbt_models.check_keys
    targets = {c.asset_key for c in check_keys}
    assert dg.AssetKey(["marts", "fct_sessions"]) in targets
    assert any(c.name.startswith("unique") for c in check_keys)


def test_the_code_location_prepares_dbt_under_dagster_dev_without_the_venv_on_path(tmp_path) -> None:
    """`dagster dev` (DAGSTER_IS_DEV_CLI) re-parses the dbt project when the code location
    loads; it must find the venv's dbt from a shell where the venv is not activated."""
    import subprocess
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ui_helpers import REPO, VENV_BIN, plain_shell_env

    env = plain_shell_env(DAGSTER_IS_DEV_CLI="1", NIGHTJAR_DATA_DIR=str(tmp_path))
    manifest = REPO / "dbt_project" / "target" / "manifest.json"
    before = manifest.stat().st_mtime_ns
    proc = subprocess.run([str(VENV_BIN / "python"), "-c", "import dagster_project.definitions"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert manifest.stat().st_mtime_ns > before  # prepared (dbt parse ran), not merely loaded


def test_the_same_asset_graph_on_spark(asset_graph) -> None:
    """NIGHTJAR_ENGINE=spark loads the dbt assets from the Spark target's manifest
    (dbt_project/target-spark/manifest.json, `make manifest`) without parsing: the same
    asset keys, dependencies and checks as on DuckDB, the dbt step still in the one-slot pool."""
    import json
    import subprocess
    import sys

    from nightjar.settings import DBT_PROJECT_DIR

    probe = (
        "import json, dagster as dg\n"
        "from dagster_project.definitions import defs\n"
        "from dagster_project.transform.assets import nightjar_dbt_models as m\n"
        "from dagster_project.transform.project import dbt_project\n"
        "g = defs.resolve_asset_graph()\n"
        "print(json.dumps({'manifest': str(dbt_project.manifest_path), 'pool': m.node_def.pool,\n"
        "  'deps': {k.to_user_string(): sorted(p.to_user_string() for p in g.get(k).parent_keys) for k in g.get_all_asset_keys()},\n"
        "  'checks': sorted(c.to_user_string() for c in g.asset_check_keys)}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_IS_DEV")}
    env["NIGHTJAR_ENGINE"] = "spark"
    proc = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    spark = json.loads(proc.stdout.strip().splitlines()[-1])
    assert spark["manifest"] == str(DBT_PROJECT_DIR / "target-spark" / "manifest.json")
    assert spark["pool"] == WAREHOUSE_POOL
    duckdb_deps = {k.to_user_string(): sorted(p.to_user_string() for p in asset_graph.get(k).parent_keys)
                   for k in asset_graph.get_all_asset_keys()}
    assert spark["deps"] == duckdb_deps
    assert spark["checks"] == sorted(c.to_user_string() for c in asset_graph.asset_check_keys)
