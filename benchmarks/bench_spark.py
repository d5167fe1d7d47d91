"""Spark vs DuckDB: the whole pipeline (`nightjar run`) and one more night, and where Spark's
time goes.

    .venv/bin/python benchmarks/bench_spark.py --scale XS              # DuckDB and Spark local[2]
    .venv/bin/python benchmarks/bench_spark.py --scale XS --cluster    # + a standalone cluster, 1 and 2 workers

For each engine configuration: a fresh copy of the simulated shop (nightjar/bench/scales.py),
`nightjar run` (first night: every day of history), `nightjar simulate --append-days 1` (new
day, late files, order updates) and `nightjar run` again (one night). Each run is its own
process: wall time, and CPU time with children from wait4. The dbt step's own numbers come
from its run_results.json (dbt's elapsed time, per-node execution times: models vs tests);
the JVM start from a bare SparkSession started as dbt-spark's session method starts it.
Results go to benchmarks/out/spark-<scale>.json and a Markdown table on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
VENV_BIN = Path(sys.executable).parent
PII_KEY = "bench-spark-pii-key"

JVM_START = r"""
import sys, time
t = time.monotonic()
from pyspark.sql import SparkSession
spark = SparkSession.builder.enableHiveSupport().config("spark.master", sys.argv[1]).getOrCreate()
started = time.monotonic() - t
spark.sql("select 1").collect()
print(f"{started:.2f} {time.monotonic() - t:.2f}")
spark.stop()
"""


def timed(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> dict:
    """Wall and CPU seconds (children included) of one process; its output to `log`."""
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "max_rss_mb": round(usage.ru_maxrss / 1024), "exit": code, "log": str(log),
            "load_1min_before": round(load_before, 2), "load_1min_after": round(os.getloadavg()[0], 2)}


def dbt_numbers(since: float) -> dict:
    """The newest dbt run_results.json written after `since`: dbt's elapsed time and
    per-node execution times (models and tests)."""
    found = [p for p in (REPO / "dbt_project" / "target").glob("*/run_results.json") if p.stat().st_mtime >= since]
    if not found:
        return {}
    data = json.loads(max(found, key=lambda p: p.stat().st_mtime).read_text())
    by_kind: dict[str, list[float]] = {}
    for r in data.get("results", []):
        kind = r["unique_id"].split(".")[0]
        by_kind.setdefault(kind, []).append(float(r.get("execution_time") or 0.0))
    out = {"dbt_elapsed_s": round(float(data.get("elapsed_time") or 0.0), 2),
           "slowest_nodes": [(r["unique_id"].split(".")[-1], round(float(r.get("execution_time") or 0.0), 1))
                             for r in sorted(data.get("results", []),
                                             key=lambda r: -float(r.get("execution_time") or 0.0))[:6]]}
    for kind, times in by_kind.items():
        out[f"{kind}_n"] = len(times)
        out[f"{kind}_sum_s"] = round(sum(times), 2)
        out[f"{kind}_median_s"] = round(statistics.median(times), 3)
    return out


def run_config(name: str, shop: Path, out: Path, extra_env: dict[str, str], one_night: bool = True) -> dict:
    data = out / name / "data"
    if data.exists():
        shutil.rmtree(data)
    shutil.copytree(shop, data)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NIGHTJAR_", "DAGSTER_"))}
    env.update(NIGHTJAR_DATA_DIR=str(data), NIGHTJAR_PII_KEY=PII_KEY, **extra_env)
    nightjar = str(VENV_BIN / "nightjar")
    result = {}
    nights = [("full", None), ("night", ["simulate", "--out", str(data), "--append-days", "1"])]
    for night, before in nights if one_night else nights[:1]:
        if before:
            subprocess.run([nightjar, *before], env=env, check=True, capture_output=True)
        since = time.time()
        step = timed([nightjar, "run"], env, REPO, out / name / f"{night}.log")
        step.update(dbt_numbers(since))
        result[night] = step
        print(f"{name} {night}: {step}", flush=True)
    return result


def jvm_start(master: str) -> dict:
    t = subprocess.run([sys.executable, "-c", JVM_START, master], capture_output=True, text=True, timeout=600)
    session_s, first_query_s = (float(x) for x in t.stdout.split()[-2:])
    return {"session_s": session_s, "session_and_first_query_s": first_query_s}


def main() -> int:
    from nightjar.bench.scales import SCALES
    from nightjar.simulator import SimConfig, simulate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="XS", choices=sorted(SCALES))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "spark"))
    parser.add_argument("--cluster", action="store_true", help="also a standalone cluster with 1 and 2 workers")
    parser.add_argument("--spark-conf", default="spark.driver.memory=6g",
                        help="NIGHTJAR_SPARK_CONF of the Spark runs (local mode: the driver is the executor; "
                             "Spark's default 1g heap would spill where DuckDB has ~80%% of RAM)")
    parser.add_argument("--skip", action="append", default=[], help="configurations to leave out (duckdb, spark-local2, cluster-1w, cluster-2w, jvm)")
    args = parser.parse_args()
    scale = SCALES[args.scale]
    out = Path(args.out) / scale.name
    shop = out / "shop"
    if not (shop / "shop.sqlite").exists():
        simulate(shop, start=scale.start, days=scale.days, customers=scale.customers, seed=scale.seed,
                 config=SimConfig(traffic_scale=scale.traffic_scale))
    path = Path(args.out) / f"spark-{scale.name}.json"
    # configurations measured by an earlier invocation (--skip) stay in the report
    report = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    report.update({"scale": scale.name, "machine": f"{os.cpu_count()} vCPU, {platform.platform()}",
                   "load_1min_at_start": os.getloadavg()[0],
                   "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    if "jvm" not in args.skip:
        report["jvm_start_local2"] = jvm_start("local[2]")
        print("JVM start:", report["jvm_start_local2"], flush=True)
    report["spark_conf"] = args.spark_conf
    configs = {"duckdb": {}, "spark-local2": {"NIGHTJAR_ENGINE": "spark", "NIGHTJAR_SPARK_MASTER": "local[2]",
                                              "NIGHTJAR_SPARK_CONF": args.spark_conf}}
    for name, env in configs.items():
        if name not in args.skip:
            report["runs"][name] = run_config(name, shop, out, env)
    if args.cluster:
        from spark_cluster import spark_cluster

        for workers in (1, 2):
            name = f"cluster-{workers}w"
            if name in args.skip:
                continue
            with spark_cluster(out / name / "cluster", workers=workers, memory="4g") as cluster:
                conf = ",".join([args.spark_conf, f"spark.cores.max={workers},spark.executor.memory=3g",
                                 "spark.driver.host=127.0.0.1"])
                # the first night only: the comparison is 1 vs 2 workers on the same work
                report["runs"][name] = run_config(name, shop, out, {
                    "NIGHTJAR_ENGINE": "spark", "NIGHTJAR_SPARK_MASTER": cluster.url, "NIGHTJAR_SPARK_CONF": conf},
                    one_night=False)
    path.write_text(json.dumps(report, indent=1))
    print(f"\n| configuration | first night wall s (CPU s) | dbt elapsed s | models (n, sum s) | tests (n, sum s) "
          f"| one night wall s (CPU s) | dbt elapsed s |")
    print("|---|---|---|---|---|---|---|")
    for name, r in report["runs"].items():
        f, n = r["full"], r.get("night", {"wall_s": "", "cpu_s": ""})
        print(f"| {name} | {f['wall_s']} ({f['cpu_s']}) | {f.get('dbt_elapsed_s', '')} | "
              f"{f.get('model_n', '')}, {f.get('model_sum_s', '')} | {f.get('test_n', '')}, {f.get('test_sum_s', '')} | "
              f"{n['wall_s']} ({n['cpu_s']}) | {n.get('dbt_elapsed_s', '')} |")
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
