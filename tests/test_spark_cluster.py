"""The standalone cluster harness (tests/spark_cluster.py) on its own: a Master and two
Workers on 127.0.0.1, a small pyspark job whose tasks Spark itself reports on both workers."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from spark_cluster import read_event_logs, spark_cluster

pytestmark = [pytest.mark.slow, pytest.mark.spark]

# A driver in its own process (as dbt's is): 8 partitions that each take a moment, so both
# executors get tasks; the live REST API is read before the driver stops.
JOB = r"""
import json, sys, time, urllib.request
from pyspark.sql import SparkSession
master, events = sys.argv[1], sys.argv[2]
spark = (SparkSession.builder.master(master).appName("nightjar-harness")
         .config("spark.cores.max", "2")                     # wait for both executors
         .config("spark.executor.memory", "512m")
         .config("spark.eventLog.enabled", "true").config("spark.eventLog.dir", events)
         .config("spark.eventLog.compress", "false")
         .getOrCreate())
sc = spark.sparkContext
total = spark.range(0, 8_000_000, numPartitions=8).selectExpr("sum(id % 7) as s").collect()[0].s
ui = sc.uiWebUrl
with urllib.request.urlopen(f"{ui}/api/v1/applications/{sc.applicationId}/allexecutors") as r:
    executors = json.load(r)
print(json.dumps({"app_id": sc.applicationId, "total": total,
                  "tasks": {e["id"]: e["completedTasks"] for e in executors if e["id"] != "driver"}}))
spark.stop()
"""


def test_a_job_runs_on_both_workers(tmp_path: Path) -> None:
    events = tmp_path / "events"
    events.mkdir()
    with spark_cluster(tmp_path / "cluster", workers=2) as cluster:
        assert len(cluster.alive_workers()) == 2
        proc = subprocess.run([sys.executable, "-c", JOB, cluster.url, events.as_uri()],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out["total"] == sum(i % 7 for i in range(7)) * (8_000_000 // 7) + sum(i % 7 for i in range(8_000_000 % 7))
        app_id = out["app_id"]
        assert any(a["id"] == app_id and a["cores"] == 2 for a in cluster.applications())
        # live REST API (executor -> tasks) joined with each worker's /json/ (worker -> executors)
        live = cluster.tasks_per_worker(app_id, {k: int(v) for k, v in out["tasks"].items()})
        assert len(live) == 2 and all(n > 0 for n in live.values()), live
        # the same from the event log, after the driver has gone
        (log,) = [e for e in read_event_logs(events) if e.app_id == app_id]
        by_port = log.tasks_per_worker_port()
        assert set(by_port) == {w.ui_port for w in cluster.workers} and all(by_port.values()), by_port
        assert sum(log.tasks_per_executor.values()) == sum(int(v) for v in out["tasks"].values())
    # stopped: nothing listens any more
    assert cluster.process.poll() is not None and all(w.process.poll() is not None for w in cluster.workers)
