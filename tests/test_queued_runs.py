"""Twenty runs queued at once on a real Dagster instance (`dagster dev`: webserver + daemon,
the repo's dagster.yaml): DuckDB allows one writing process, so the warehouse-writing steps
share the `duckdb_warehouse` pool (one slot) and the instance starts at most
`max_concurrent_runs` (4) runs at a time. What a user relies on: every queued run succeeds
(no lock error), no two warehouse writers ever ran at the same time, and the loads that ran
twenty times over the same sources counted nothing twice.

Runs are launched through GraphQL (the same mutation the UI's "Materialize" sends); states
and step timings are read back through GraphQL.
"""
from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ui_helpers import (  # noqa: E402
    REPO,
    RUN_DONE,
    SETTINGS_VARS,
    dagster_dev,
    simulate_shop,
    wait_location_loaded,
    wait_until,
)

pytestmark = pytest.mark.slow

RUNS = 20

LAUNCH = """
mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId status } }
  ... on PythonError { message }
  ... on InvalidSubsetError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }
"""
RUNS_STATS = """
query Runs($ids: [String!]) { runsOrError(filter: {runIds: $ids}) { __typename
  ... on Runs { results { runId status startTime endTime
      stepStats { stepKey status startTime endTime } } } } }
"""


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    """Most intervals open at one instant (an end at t closes before a start at t)."""
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda p: (p[0], p[1]))
    open_now = most = 0
    for _, d in points:
        open_now += d
        most = max(most, open_now)
    return most


def test_twenty_queued_runs_take_turns_on_the_warehouse(tmp_path: Path) -> None:
    shop = tmp_path / "shop"
    simulate_shop(shop, days=14, customers=60, seed=3)
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARS}
    env["NIGHTJAR_DATA_DIR"] = str(shop)
    instance_yaml = yaml.safe_load((REPO / "dagster_project" / "dagster.yaml").read_text())
    max_runs = instance_yaml["concurrency"]["runs"]["max_concurrent_runs"]

    with dagster_dev(workspace=REPO / "workspace.yaml", cwd=REPO, dagster_home=tmp_path / "dagster_home",
                     env=env, log_path=tmp_path / "dagster_dev.log") as dev:
        entry = wait_location_loaded(dev)
        repo = entry["locationOrLoadError"]["repositories"][0]["name"]
        # the two dlt loads, alternately: both write the warehouse (pool duckdb_warehouse)
        selections = [[{"path": ["raw", "orders"]}, {"path": ["raw", "customers"]},
                       {"path": ["raw", "products"]}, {"path": ["raw", "order_items"]}],
                      [{"path": ["raw", "events"]}, {"path": ["raw", "events_rejected"]},
                       {"path": ["raw", "events_load_log"]}]]
        run_ids = []
        for i in range(RUNS):
            params = {"selector": {"repositoryLocationName": entry["name"], "repositoryName": repo,
                                   "jobName": "__ASSET_JOB", "assetSelection": selections[i % 2]},
                      "mode": "default", "runConfigData": {}}
            res = dev.graphql(LAUNCH, {"params": params})["launchRun"]
            assert res["__typename"] == "LaunchRunSuccess", res
            run_ids.append(res["run"]["runId"])

        def all_done():
            data = dev.graphql(RUNS_STATS, {"ids": run_ids})["runsOrError"]
            assert data["__typename"] == "Runs", data
            return data["results"] if all(r["status"] in RUN_DONE for r in data["results"]) else None

        results = wait_until(all_done, 900, interval=3, what=f"{RUNS} queued runs to finish\n{dev.log_tail()}")

    assert len(results) == RUNS
    assert {r["runId"]: r["status"] for r in results} == dict.fromkeys(run_ids, "SUCCESS")
    # the run queue: never more than max_concurrent_runs at once, and it really queued
    runs_open = [(r["startTime"], r["endTime"]) for r in results]
    assert 1 <= _max_overlap(runs_open) <= max_runs
    # the pool: the warehouse-writing steps (one per run) never overlapped
    steps = [(s["startTime"], s["endTime"]) for r in results for s in r["stepStats"]]
    assert len(steps) == RUNS and all(s and e for s, e in steps)
    assert _max_overlap(steps) == 1

    # twenty loads of the same sources: every row once
    con = duckdb.connect(str(shop / "warehouse.duckdb"), read_only=True)
    try:
        src = sqlite3.connect(shop / "shop.sqlite")
        try:
            for table in ("orders", "customers", "order_items"):
                assert con.execute(f"select count(*) from raw.{table}").fetchone() == \
                    src.execute(f"select count(*) from {table}").fetchone(), table
        finally:
            src.close()
        files = sorted(p.name for p in (shop / "landing" / "events").rglob("*.jsonl*"))
        logged = con.execute("select count(*), count(distinct _file) from raw.events_load_log").fetchone()
        assert logged == (len(files), len(files))  # every landing file loaded exactly once
        lines, rows, rejected = con.execute(
            "select sum(lines_read), (select count(*) from raw.events), (select count(*) from raw.events_rejected) "
            "from raw.events_load_log").fetchone()
        assert lines == rows + rejected > 0
    finally:
        con.close()
    print(f"max runs at once: {_max_overlap(runs_open)}")
