"""Guarantee: overlapping runs (cron + a manual run + the UI, or 20 requests in quick
succession) queue on the warehouse lock instead of failing on DuckDB's file lock, and load
every file exactly once.

``nightjar run`` executes in process on its own (ephemeral) Dagster instance, so the
``duckdb_warehouse`` pool of one instance cannot serialise two such processes; the
cross-process protocol is ``nightjar.warehouse_lock`` (taken by ``load_events``/``load_shop``).
"""
from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from nightjar.warehouse_lock import WarehouseBusyError, lock_path, warehouse_lock

from .helpers import PYTHON, REPO, copy_shop, diff_hashes, query, settings_env, table_hashes

# One parent imports the pipeline once, then forks N children in quick succession (so that
# 20 runs do not pay 20 interpreter start-ups on a 2-core machine); each child is a full
# nightly ingestion run of its own process.
FORK_RUNS = """
import json, os, sys, time
from nightjar.ingest import load_events, load_shop
n, pids = int(sys.argv[1]), []
for i in range(n):
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            e = load_events(); s = load_shop()
            print(json.dumps({"child": i, "files": e["files_loaded"], "shop_rows": s["rows_total"]}), flush=True)
        except BaseException as exc:
            print(f"child {i} FAILED: {type(exc).__name__}: {exc}", flush=True)
            code = 1
        os._exit(code)
    pids.append(pid)
    time.sleep(0.01)
failed = sum(os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) != 0 for p in pids)
print(json.dumps({"failed": failed}), flush=True)
sys.exit(1 if failed else 0)
"""


@pytest.mark.slow
def test_twenty_overlapping_runs_queue_and_load_everything_once(night, tmp_path):
    work = copy_shop(night.template, tmp_path / "data")
    started = time.monotonic()
    proc = subprocess.run([PYTHON, "-c", FORK_RUNS, "20"], env=settings_env(work), cwd=str(REPO),
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert "Could not set lock" not in out and "Conflicting lock" not in out
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"child"')]
    assert len(results) == 20
    # exactly one run found the night's files; the 19 others found nothing left to do
    assert sorted(r["files"] for r in results)[-1] > 0 and sum(r["files"] > 0 for r in results) == 1
    assert sum(r["shop_rows"] > 0 for r in results) == 1
    wh = work / "warehouse.duckdb"
    assert diff_hashes(night.raw_hashes, table_hashes(wh, schemas=("raw",))) == {}
    assert query(wh, "select count(*) from (select _file from raw.events_load_log group by 1 having count(*) > 1)")[0][0] == 0
    print(f"20 overlapping runs in {time.monotonic() - started:.1f}s")


def test_lock_waits_times_out_clearly_and_is_reentrant(tmp_path):
    wh = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen(
        [PYTHON, "-c", "import sys, time; from nightjar.warehouse_lock import warehouse_lock\n"
                       "with warehouse_lock(sys.argv[1], purpose='holder'):\n"
                       "    print('held', flush=True); time.sleep(float(sys.argv[2]))", str(wh), "1.5"],
        stdout=subprocess.PIPE, text=True, cwd=str(REPO), start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(WarehouseBusyError, match="busy.*held by \\[pid \\d+ holder\\]"):
            with warehouse_lock(wh, timeout=0.2):
                pass
        t0 = time.monotonic()
        with warehouse_lock(wh, timeout=30):  # waits for the holder, then gets it
            waited = time.monotonic() - t0
            with warehouse_lock(wh, timeout=0):  # re-entrant in the same thread
                pass
        assert waited > 0.3
    finally:
        holder.kill()
        holder.wait()
    # a SIGKILLed holder never leaves a stale lock (the kernel drops flock with the process)
    holder = subprocess.Popen(
        [PYTHON, "-c", "import sys, time; from nightjar.warehouse_lock import warehouse_lock\n"
                       "with warehouse_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)", str(wh)],
        stdout=subprocess.PIPE, text=True, cwd=str(REPO), start_new_session=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    with warehouse_lock(wh, timeout=5):
        assert lock_path(wh).exists()
    # threads of one process queue too
    order: list[int] = []

    def worker(i):
        with warehouse_lock(wh, timeout=30):
            order.append(i)
            time.sleep(0.05)
            order.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert all(order[k] == order[k + 1] for k in range(0, len(order), 2))  # never interleaved


def test_lock_cli_wraps_a_command(tmp_path):
    wh = tmp_path / "warehouse.duckdb"
    proc = subprocess.run([PYTHON, "-m", "nightjar.warehouse_lock", str(wh), "--timeout", "5", "--",
                           PYTHON, "-c", "print('inside')"], capture_output=True, text=True, cwd=str(REPO))
    assert proc.returncode == 0 and proc.stdout.strip() == "inside"


@pytest.mark.slow
def test_overlapping_dagster_runs_of_the_whole_chain_queue_and_agree(night, tmp_path):
    """Three `nightjar run`s (ingest → dbt marts through Dagster) started together, as a
    cron run, a manual run and a retry would be: none fails on DuckDB's lock, and the
    warehouse equals one uninterrupted run."""
    data = copy_shop(night.template, tmp_path / "data")
    env = settings_env(data)
    cmd = [str(REPO / ".venv" / "bin" / "nightjar"), "run", "--select",
           "group:ingestion or group:staging or group:marts"]
    procs = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(3)]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
        assert "Could not set lock" not in out and "Conflicting lock" not in out
    assert diff_hashes(table_hashes(data / "warehouse.duckdb"), night.hashes) == {}
