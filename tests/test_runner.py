"""`nightjar run`'s bookkeeping: when the nightly dbt build has nothing to do, and a run
whose process was killed does not hold the warehouse slot of the shared instance."""
from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import dagster as dg
import duckdb
from dagster._core.storage.dagster_run import DagsterRun

from nightjar import build_state
from nightjar.dagster_home import HOST_TAG, LAUNCHER_TAG, PID_TAG, close_orphaned_runs, launcher_tags, prepare_dagster_home
from nightjar.settings import DBT_PROJECT_DIR, get_settings


def _raw(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema raw")
    con.execute("create table raw.events (event_id varchar, _dlt_load_id varchar)")
    con.execute("create table raw.orders (order_id varchar, status varchar, _dlt_load_id varchar)")
    con.execute("create table raw.events_load_log (file varchar, rows_loaded integer)")
    con.execute("insert into raw.events values ('e1', '100'), ('e2', '100')")
    con.execute("insert into raw.orders values ('o1', 'placed', '100')")
    con.execute("insert into raw.events_load_log values ('a.jsonl', 2)")


def test_nothing_to_build_only_when_raw_project_and_selection_are_unchanged(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    _raw(con)
    project = build_state.project_fingerprint()
    selected = ["marts/fct_sessions", "staging/stg_events"]
    state_file = tmp_path / "state.json"
    assert not build_state.nothing_to_build(build_state.read_state(state_file), build_state.raw_fingerprint(con),
                                            project, selected)  # never built
    build_state.write_state(state_file, build_state.raw_fingerprint(con), project, selected)

    def idle(sel=selected, proj=project) -> bool:
        return build_state.nothing_to_build(build_state.read_state(state_file), build_state.raw_fingerprint(con), proj, sel)

    assert idle()
    assert idle(sel=["marts/fct_sessions"])  # a narrower selection was built too
    assert not idle(sel=[*selected, "marts/dim_customers"])  # a model the last build did not build
    # a dbt file changed
    copy = tmp_path / "dbt_copy"
    shutil.copytree(DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target", "logs"))
    assert build_state.project_fingerprint(copy) == project
    model = next(copy.glob("models/marts/*.sql"))
    model.write_text(model.read_text() + "\n-- edited\n")
    assert not idle(proj=build_state.project_fingerprint(copy))
    # a shop row merged by a later load: same count, newer load id
    con.execute("update raw.orders set status = 'shipped', _dlt_load_id = '200'")
    assert not idle()
    build_state.write_state(state_file, build_state.raw_fingerprint(con), project, selected)
    assert idle()
    # a new landing file with only rejected lines still changes raw
    con.execute("insert into raw.events_load_log values ('b.jsonl', 0)")
    assert not idle()


def test_a_killed_nightjar_run_is_closed_and_frees_the_warehouse_slot(tmp_path: Path) -> None:
    settings = get_settings({"NIGHTJAR_DATA_DIR": str(tmp_path / "data")})
    home = prepare_dagster_home(settings)
    assert home == tmp_path / "data" / "dagster_home" and (home / "dagster.yaml").exists()
    dead = subprocess.Popen(["true"])
    dead.wait()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        tags = {**launcher_tags(), PID_TAG: str(dead.pid)}
        orphan = instance.add_run(DagsterRun(job_name="__ASSET_JOB", run_id=str(uuid.uuid4()),
                                             status=dg.DagsterRunStatus.STARTED, tags=tags))
        alive = instance.add_run(DagsterRun(job_name="__ASSET_JOB", run_id=str(uuid.uuid4()),
                                            status=dg.DagsterRunStatus.STARTED, tags=launcher_tags()))
        other_host = instance.add_run(DagsterRun(job_name="__ASSET_JOB", run_id=str(uuid.uuid4()),
                                                 status=dg.DagsterRunStatus.STARTED,
                                                 tags={**tags, HOST_TAG: "elsewhere"}))
        # the pool's one slot exists before any run (else two first runs could both take one)
        assert instance.event_log_storage.get_concurrency_info("duckdb_warehouse").slot_count == 1
        instance.event_log_storage.claim_concurrency_slot("duckdb_warehouse", orphan.run_id, "dlt_landing_events")
        assert instance.event_log_storage.get_concurrency_info("duckdb_warehouse").claimed_slots

        assert close_orphaned_runs(instance) == [orphan.run_id]

        assert instance.get_run_by_id(orphan.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED  # our own process
        assert instance.get_run_by_id(other_host.run_id).status == dg.DagsterRunStatus.STARTED  # cannot tell
        assert not instance.event_log_storage.get_concurrency_info("duckdb_warehouse").claimed_slots
        assert instance.get_run_by_id(orphan.run_id).tags[LAUNCHER_TAG] == "nightjar run"
