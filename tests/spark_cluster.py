"""A real standalone Spark cluster on 127.0.0.1 for tests: one Master and N Workers started
from pyspark's own ``bin/spark-class`` (SPARK_HOME = the installed pyspark package), each in
its own session/process group (``setsid``) so that stopping the group ends its JVM and
every executor it launched.

Proof that work was distributed comes from Spark itself:
- the master's ``/json/`` (workers ALIVE, applications with their cores),
- each worker's ``/json/`` (the executors it runs or ran, by application),
- a live driver's REST API ``/api/v1/applications/<id>/executors`` (tasks per executor),
- or, once the driver has exited (dbt's process), its event log: ``SparkListenerTaskEnd``
  events name the executor of every task, and ``SparkListenerExecutorAdded`` the worker's
  web UI in the executor's log URLs.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyspark

SPARK_HOME = Path(pyspark.__file__).resolve().parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


@dataclass
class Worker:
    port: int
    ui_port: int
    process: subprocess.Popen
    work_dir: Path

    @property
    def ui(self) -> str:
        return f"http://{HOST}:{self.ui_port}"

    def json(self) -> dict[str, Any]:
        return get_json(f"{self.ui}/json/")


@dataclass
class SparkCluster:
    port: int
    ui_port: int
    process: subprocess.Popen
    log_dir: Path
    workers: list[Worker] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"spark://{HOST}:{self.port}"

    @property
    def ui(self) -> str:
        return f"http://{HOST}:{self.ui_port}"

    def master_json(self) -> dict[str, Any]:
        return get_json(f"{self.ui}/json/")

    def alive_workers(self) -> list[dict[str, Any]]:
        try:
            return [w for w in self.master_json().get("workers", []) if w.get("state") == "ALIVE"]
        except OSError:
            return []

    def applications(self) -> list[dict[str, Any]]:
        """Active and completed applications as the master lists them (id, name, cores, ...)."""
        data = self.master_json()
        return [*data.get("activeapps", []), *data.get("completedapps", [])]

    def executors_by_worker(self, app_id: str) -> dict[int, set[str]]:
        """worker web UI port -> the executor ids of `app_id` it runs or ran."""
        out: dict[int, set[str]] = {}
        for w in self.workers:
            data = w.json()
            ids = {str(e["id"]) for e in [*data.get("executors", []), *data.get("finishedexecutors", [])]
                   if e.get("appid") == app_id}
            out[w.ui_port] = ids
        return out

    def tasks_per_worker(self, app_id: str, tasks_per_executor: dict[str, int]) -> dict[int, int]:
        """worker web UI port -> tasks its executors of `app_id` ran."""
        return {port: sum(tasks_per_executor.get(e, 0) for e in ids)
                for port, ids in self.executors_by_worker(app_id).items()}


def live_tasks_per_executor(driver_ui: str, app_id: str) -> dict[str, int]:
    """A running driver's REST API: executor id -> completed tasks (the driver itself excluded)."""
    executors = get_json(f"{driver_ui.rstrip('/')}/api/v1/applications/{app_id}/allexecutors")
    return {e["id"]: int(e["completedTasks"]) for e in executors if e["id"] != "driver"}


@dataclass
class EventLog:
    app_id: str
    app_name: str
    tasks_per_executor: Counter
    # executor id -> the web UI port of the worker in its log URLs
    executor_worker_port: dict[str, int]

    def tasks_per_worker_port(self) -> Counter:
        out: Counter = Counter()
        for executor, n in self.tasks_per_executor.items():
            out[self.executor_worker_port.get(executor, -1)] += n
        return out


def _event_log_files(folder: Path) -> list[list[Path]]:
    """The files of each application's log: a single file, or (rolling logs, Spark 4's
    default) a folder `eventlog_v2_<app>` of `events_<n>_<app>` parts."""
    apps = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_file():
            apps.append([path])
        elif path.is_dir() and path.name.startswith("eventlog_v2_"):
            parts = [p for p in path.iterdir() if p.name.startswith("events_")]
            apps.append(sorted(parts, key=lambda p: int(p.name.split("_")[1])))
    return apps


def read_event_logs(folder: Path) -> list[EventLog]:
    """Every (uncompressed: spark.eventLog.compress=false) Spark event log in `folder`
    (spark.eventLog.dir)."""
    logs = []
    for files in _event_log_files(folder):
        app_id = app_name = ""
        tasks: Counter = Counter()
        ports: dict[str, int] = {}
        for path in files:
            with path.open() as f:
                for line in f:
                    if not line.strip():
                        continue
                    ev = json.loads(line)
                    kind = ev.get("Event")
                    if kind == "SparkListenerApplicationStart":
                        app_id, app_name = ev.get("App ID", ""), ev.get("App Name", "")
                    elif kind == "SparkListenerTaskEnd":
                        tasks[str(ev["Task Info"]["Executor ID"])] += 1
                    elif kind == "SparkListenerExecutorAdded":
                        urls = (ev.get("Executor Info") or {}).get("Log Urls") or {}
                        for url in urls.values():
                            port = urlsplit(url).port
                            if port:
                                ports[str(ev["Executor ID"])] = port
                                break
        logs.append(EventLog(app_id, app_name, tasks, ports))
    return logs


def _spark_env(log_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_"))}
    env.update({
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": HOST,
        "SPARK_LOG_DIR": str(log_dir),
        "SPARK_NO_DAEMONIZE": "1",
        # Python tasks on the executors use this venv's interpreter
        "PYSPARK_PYTHON": sys.executable,
    })
    return env


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    out = log.open("ab")
    try:
        # start_new_session: setsid, so the whole group (JVM, executors) is stopped together
        return subprocess.Popen([str(SPARK_HOME / "bin" / "spark-class"), *args], stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    finally:
        out.close()


def _stop(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=timeout)


@contextmanager
def spark_cluster(root: Path, workers: int = 2, cores: int = 1, memory: str = "1g",
                  timeout: float = 240.0) -> Iterator[SparkCluster]:
    """A Master and `workers` Workers (each `cores` cores, `memory`) on 127.0.0.1, waited for
    until all workers are ALIVE in the master's /json/; everything is stopped on exit."""
    root.mkdir(parents=True, exist_ok=True)
    log_dir = root / "logs"
    log_dir.mkdir(exist_ok=True)
    env = _spark_env(log_dir)
    port, ui_port = free_port(), free_port()
    master = _start(["org.apache.spark.deploy.master.Master", "--host", HOST, "--port", str(port),
                     "--webui-port", str(ui_port)], log_dir / "master.log", env)
    cluster = SparkCluster(port, ui_port, master, log_dir)
    try:
        for i in range(workers):
            w_port, w_ui = free_port(), free_port()
            work_dir = root / f"worker-{i}"
            work_dir.mkdir(exist_ok=True)
            proc = _start(["org.apache.spark.deploy.worker.Worker", "--host", HOST, "--port", str(w_port),
                           "--webui-port", str(w_ui), "--cores", str(cores), "--memory", memory,
                           "--work-dir", str(work_dir), cluster.url], log_dir / f"worker-{i}.log", env)
            cluster.workers.append(Worker(w_port, w_ui, proc, work_dir))
        deadline = time.monotonic() + timeout
        while len(cluster.alive_workers()) < workers:
            for p in [master, *(w.process for w in cluster.workers)]:
                if p.poll() is not None:
                    raise RuntimeError(f"a Spark daemon exited ({p.args[1]}); logs in {log_dir}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(cluster.alive_workers())} of {workers} workers ALIVE after "
                                   f"{timeout:.0f} s; logs in {log_dir}")
            time.sleep(1.0)
        yield cluster
    finally:
        for w in cluster.workers:
            _stop(w.process)
        _stop(master)
