"""The scale benchmark harness behind `nightjar bench`.

For one scale (a simulated shop with a year of history) it measures, ``reps`` times each:

1. events ingest: ``load_events`` (dlt) vs DuckDB ``read_json`` of the same files;
2. orders ingest: ``load_shop`` (dlt) vs a direct SQLite -> Arrow -> DuckDB copy;
3. ``dbt build`` vs ``benchmarks/handwritten_marts.sql`` on the same raw layer, plus a
   row-for-row comparison of their marts;
4. a nightly incremental run (one appended day: new files, late files, refunds) vs a
   full refresh of the same 366 days; each is two processes, as in the nightly job: both
   dlt loads in one (the job's in-process executor), then dbt (dagster-dbt runs the CLI);
5. ``nightjar run`` (Dagster, in process) vs the sum of its steps run directly;
6. peak RSS and CPU of every step (each step is its own process, read with ``wait4``).

Every step gets the same DuckDB ``memory_limit``/``temp_directory`` through the settings
(NIGHTJAR_DUCKDB_*). Results: a dict (written as JSON by the CLI).
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nightjar.bench.scales import SCALES, Scale
from nightjar.dbt_args import nightly_dbt_args
from nightjar.pii_key import KEY_FILE_NAME, ensure_key_file
from nightjar.settings import DBT_PROJECT_DIR, REPO_ROOT

HANDWRITTEN_SQL = REPO_ROOT / "benchmarks" / "handwritten_marts.sql"
MART_TABLES = ["fct_sessions", "fct_daily_metrics", "fct_retention_daily", "fct_retention_weekly",
               "dim_customers", "fct_funnel_daily", "fct_attribution", "fct_channel_daily"]
BIN = Path(sys.executable).parent
# the nightly job's ingestion + dbt part: the same steps that section 5 runs directly
# (the ML, alerts and report assets downstream are not part of the comparison)
DAGSTER_SELECTION = "kind:dlt or kind:dbt"


def _log(msg: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Runner:
    def __init__(self, work: Path, memory_limit: str | None, threads: int | None):
        self.work = work
        self.memory_limit = memory_limit
        self.threads = threads
        self.dbt_target = work / "dbt_target"
        self.spill = work / "spill"
        self.spill.mkdir(parents=True, exist_ok=True)

    # -- environment ---------------------------------------------------------------------
    def env(self, data_dir: Path, warehouse: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTJAR_")}
        # the bench shop's own PII key file, read by dbt and by the hand-written marts alike
        ensure_key_file(data_dir / KEY_FILE_NAME, environ=env)
        env.update(
            NIGHTJAR_DATA_DIR=str(data_dir),
            NIGHTJAR_WAREHOUSE=str(warehouse),
            NIGHTJAR_SHOP_DB_URL=f"sqlite:///{data_dir / 'shop.sqlite'}",
            NIGHTJAR_DUCKDB_TEMP_DIRECTORY=str(self.spill),
            DBT_TARGET_PATH=str(self.dbt_target),
            DBT_LOG_PATH=str(self.work / "dbt_logs"),
            DBT_SEND_ANONYMOUS_USAGE_STATS="false",
            PYTHONUNBUFFERED="1",
        )
        if self.memory_limit:
            env["NIGHTJAR_DUCKDB_MEMORY_LIMIT"] = self.memory_limit
        if self.threads:
            env["NIGHTJAR_DUCKDB_THREADS"] = str(self.threads)
        return env

    def duck_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"temp_directory": str(self.spill)}
        if self.memory_limit:
            cfg["memory_limit"] = self.memory_limit
        if self.threads:
            cfg["threads"] = self.threads
        return cfg

    # -- one measured process -------------------------------------------------------------
    def run(self, label: str, cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> dict:
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        log_file = self.work / "logs" / f"{label}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "w") as out:
            proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=out, text=True)
            stdout_text = proc.stdout.read()  # type: ignore[union-attr]
            _, status, ru = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.write("\n--- stdout ---\n" + stdout_text)
        wall = time.perf_counter() - t0
        res: dict[str, Any] = {
            "wall_s": round(wall, 3),
            "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
            "max_rss_mb": round(ru.ru_maxrss / 1024, 1),
            "load_avg_before": round(load_before, 2),
            "load_avg_after": round(os.getloadavg()[0], 2),
        }
        for line in stdout_text.splitlines():
            if line.startswith("BENCH_RESULT "):
                res.update(json.loads(line[len("BENCH_RESULT "):]))
        if proc.returncode != 0:
            raise RuntimeError(f"bench step {label} failed (exit {proc.returncode}); see {log_file}")
        _log(f"{label}: wall {res['wall_s']:.1f}s cpu {res['cpu_s']:.1f}s rss {res['max_rss_mb']:.0f}MB "
             f"load {load_before:.1f}")
        return res

    def step(self, label: str, name: str, args: dict, data_dir: Path, warehouse: Path) -> dict:
        cmd = [sys.executable, "-m", "nightjar.bench.steps", name, json.dumps(args)]
        return self.run(label, cmd, self.env(data_dir, warehouse))

    def dbt(self, label: str, args: list[str], data_dir: Path, warehouse: Path) -> dict:
        cmd = [str(BIN / "dbt"), *args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir",
               str(DBT_PROJECT_DIR), "--target-path", str(self.dbt_target)]
        return self.run(label, cmd, self.env(data_dir, warehouse))


def fresh_db(path: Path) -> Path:
    for p in (path, Path(str(path) + ".wal")):
        if p.exists():
            p.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def copy_db(src: Path, dst: Path) -> Path:
    fresh_db(dst)
    shutil.copyfile(src, dst)
    # flush the copy now: otherwise the kernel writes its dirty pages back while the next
    # measured step runs (a 3 GB copy cost the nightly events load at M ~0.7 s in fsync)
    with open(dst, "rb+") as fh:
        os.fsync(fh.fileno())
    return dst


def summarize(samples: list[dict], key: str = "wall_s") -> dict:
    vals = [s[key] for s in samples if key in s]
    if not vals:
        return {}
    return {
        "median": round(statistics.median(vals), 3),
        "min": round(min(vals), 3),
        "max": round(max(vals), 3),
        "n": len(vals),
    }


def stats_of(samples: list[dict]) -> dict:
    out = {k: summarize(samples, k) for k in ("wall_s", "op_wall_s", "cpu_s", "op_cpu_s", "max_rss_mb")}
    out = {k: v for k, v in out.items() if v}
    out["load_avg"] = [s["load_avg_before"] for s in samples]
    out["samples"] = samples
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    if not a or not b:
        return None
    return round(a / b, 3)


def ensure_shop(runner: Runner, scale: Scale, root: Path, with_plus1: bool = True) -> tuple[Path, Path, dict]:
    """The scale's shop (365 days) and the same shop + 1 appended day; reused when present."""
    base = root / f"shop-{scale.name}"
    plus1 = root / f"shop-{scale.name}-plus1"
    meta: dict[str, Any] = {}
    marker = base / ".bench_complete"
    spec = {"days": scale.days, "customers": scale.customers, "traffic_scale": scale.traffic_scale,
            "start": scale.start.isoformat(), "seed": scale.seed}
    if not marker.exists() or json.loads(marker.read_text()).get("spec") != spec:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(plus1, ignore_errors=True)
        res = runner.step(f"simulate-{scale.name}", "simulate", {"out": str(base), **spec}, base, base / "x.duckdb")
        marker.write_text(json.dumps({"spec": spec, "result": res}))
    meta["simulate"] = json.loads(marker.read_text())["result"]
    if not with_plus1:
        return base, plus1, meta
    marker1 = plus1 / ".bench_complete"
    if not marker1.exists():
        shutil.rmtree(plus1, ignore_errors=True)
        shutil.copytree(base, plus1, ignore=shutil.ignore_patterns(".bench_complete", "*.duckdb*", "artifacts"))
        res = runner.step(f"append-{scale.name}", "simulate", {"out": str(plus1), "append_days": 1}, plus1,
                          plus1 / "x.duckdb")
        marker1.write_text(json.dumps({"result": res}))
    meta["append"] = json.loads(marker1.read_text())["result"]
    return base, plus1, meta


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("dlt", "duckdb", "dbt-core", "dbt-duckdb", "dagster", "dagster-dbt", "pyarrow", "sqlalchemy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def source_commit() -> str | None:
    """The checked-out commit of this repository (with ``+dirty`` for uncommitted changes to
    tracked files), so a result names the code it measured; None outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "memory_gb": round(mem_gb, 1),
            "platform": platform.platform()}


def _start_run(scale: Scale, name: str, work: Path, memory_limit: str | None,
               threads: int | None) -> tuple[Path, Runner, dict[str, Any]]:
    """A fresh ``work/run-<name>`` dir, its Runner, and the result header every run records
    (scale, machine, versions, DuckDB settings, command, load average)."""
    run_dir = work / f"run-{name}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    runner = Runner(run_dir, memory_limit, threads)
    header: dict[str, Any] = {
        "scale": name,
        "scale_spec": {"days": scale.days, "customers": scale.customers, "traffic_scale": scale.traffic_scale,
                       "start": scale.start.isoformat(), "seed": scale.seed, "approx_events": scale.approx_events},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "commit": source_commit(),
        "duckdb_settings": runner.duck_config(),
        "command": " ".join(["nightjar", "bench", *sys.argv[2:]]) if sys.argv[1:2] == ["bench"] else None,
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }
    return run_dir, runner, header


def _landing_mb(base: Path) -> float:
    return round(sum(f.stat().st_size for f in (base / "landing").rglob("*") if f.is_file()) / 1e6, 1)


def run_bench(
    scale_name: str = "S",
    reps: int = 3,
    work: Path | None = None,
    memory_limit: str | None = "4GB",
    threads: int | None = None,
    skip: set[str] | None = None,
) -> dict:
    skip = skip or set()
    scale = SCALES[scale_name]
    work = (work or REPO_ROOT / "benchmarks" / "out").resolve()
    started = time.perf_counter()
    run_dir, runner, result = _start_run(scale, scale.name, work, memory_limit, threads)
    result["reps"] = reps
    base, plus1, meta = ensure_shop(runner, scale, work)
    result["data"] = {"simulate": meta["simulate"], "append": meta["append"], "landing_mb": _landing_mb(base),
                      "shop_sqlite_mb": round((base / "shop.sqlite").stat().st_size / 1e6, 1)}
    # dbt: parse once into the bench target dir (not timed), so builds use partial parsing
    runner.dbt("dbt-parse", ["parse", "--quiet"], base, run_dir / "parse.duckdb")
    wh = run_dir / "wh.duckdb"
    raw_db = run_dir / "raw_baseline.duckdb"
    marts_db = run_dir / "marts_baseline.duckdb"
    hw_db = run_dir / "handwritten.duckdb"
    sections: dict[str, Any] = {}

    # 1 + 2: ingestion, dlt vs direct; the last dlt rep leaves the raw layer for dbt
    ev_dlt, ev_duck, shop_dlt, shop_duck = [], [], [], []
    for i in range(reps):
        fresh_db(wh)
        shutil.rmtree(base / "artifacts", ignore_errors=True)
        ev_dlt.append(runner.step(f"events_dlt-{i}", "events_dlt", {}, base, wh))
        shop_dlt.append(runner.step(f"shop_dlt-{i}", "shop_dlt", {}, base, wh))
        d = fresh_db(run_dir / "direct.duckdb")
        ev_duck.append(runner.step(f"events_duckdb-{i}", "events_duckdb",
                                   {"events_dir": str(base / "landing" / "events"), "warehouse": str(d),
                                    "config": runner.duck_config()}, base, d))
        d = fresh_db(run_dir / "direct.duckdb")
        shop_duck.append(runner.step(f"shop_duckdb-{i}", "shop_duckdb",
                                     {"sqlite_path": str(base / "shop.sqlite"), "warehouse": str(d),
                                      "config": runner.duck_config()}, base, d))
    fresh_db(run_dir / "direct.duckdb")
    copy_db(wh, raw_db)
    sections["events_ingest"] = {
        "dlt": stats_of(ev_dlt), "duckdb_read_json": stats_of(ev_duck),
        "rows_dlt": ev_dlt[-1].get("rows"), "rejected_dlt": ev_dlt[-1].get("rejected"),
        "rows_duckdb": ev_duck[-1].get("rows"),
        # share of DuckDB's direct-read speed that dlt reaches (target >= 0.5), by the
        # measured operation's wall time (imports excluded) and by CPU time
        "speed_ratio_wall": ratio(stats_of(ev_duck)["op_wall_s"]["median"], stats_of(ev_dlt)["op_wall_s"]["median"]),
        "speed_ratio_cpu": ratio(stats_of(ev_duck)["op_cpu_s"]["median"], stats_of(ev_dlt)["op_cpu_s"]["median"]),
        "target": ">= 0.5",
    }
    sections["orders_ingest"] = {
        "dlt": stats_of(shop_dlt), "direct_sqlite3_arrow": stats_of(shop_duck),
        "rows_dlt": shop_dlt[-1].get("rows"), "rows_direct": shop_duck[-1].get("rows"),
        "speed_ratio_wall": ratio(stats_of(shop_duck)["op_wall_s"]["median"], stats_of(shop_dlt)["op_wall_s"]["median"]),
        "speed_ratio_cpu": ratio(stats_of(shop_duck)["op_cpu_s"]["median"], stats_of(shop_dlt)["op_cpu_s"]["median"]),
        "target": ">= 0.3",
        "note": "DuckDB's sqlite extension cannot be installed offline here (download blocked; the PyPI "
                "duckdb-ext-sqlite wheels target DuckDB 1.4, we run 2.0): the direct read is Python's "
                "sqlite3 (C) -> Arrow -> DuckDB CREATE TABLE.",
    }

    # 3: dbt build vs hand-written SQL, on copies of the same raw layer
    dbt_runs, hw_runs = [], []
    for i in range(reps):
        copy_db(raw_db, hw_db)
        hw_runs.append(runner.step(f"handwritten-{i}", "handwritten",
                                   {"warehouse": str(hw_db), "sql_file": str(HANDWRITTEN_SQL),
                                    "config": runner.duck_config()}, base, hw_db))
        copy_db(raw_db, wh)
        dbt_runs.append(runner.dbt(f"dbt_build-{i}", ["build", "--quiet"], base, wh))
    fresh_db(hw_db)
    # the last dbt build's warehouse is the history of section 4; then correctness: the
    # hand-written marts next to dbt's in the same warehouse, compared row for row
    copy_db(wh, marts_db)
    runner.step("handwritten-check", "handwritten", {"warehouse": str(wh), "sql_file": str(HANDWRITTEN_SQL),
                                                     "config": runner.duck_config()}, base, wh)
    cmp = runner.step("compare", "compare", {"warehouse": str(wh), "tables": MART_TABLES,
                                             "config": runner.duck_config()}, base, wh)
    dbt_run_only = None
    if "dbt-run-only" not in skip:  # models and seeds without the tests
        copy_db(raw_db, wh)
        dbt_run_only = runner.dbt("dbt_build_no_tests", ["build", "--quiet", "--exclude-resource-type", "test",
                                                         "unit_test"], base, wh)
    sections["dbt_vs_handwritten"] = {
        "dbt_build": stats_of(dbt_runs), "handwritten": stats_of(hw_runs), "dbt_build_no_tests": dbt_run_only,
        "slowdown_wall": ratio(stats_of(dbt_runs)["wall_s"]["median"], stats_of(hw_runs)["wall_s"]["median"]),
        "slowdown_cpu": ratio(stats_of(dbt_runs)["cpu_s"]["median"], stats_of(hw_runs)["cpu_s"]["median"]),
        "slowdown_no_tests_wall": ratio(dbt_run_only["wall_s"], stats_of(hw_runs)["wall_s"]["median"])
        if dbt_run_only else None,
        "target": "<= 1.5",
        "comparison": {"equal": cmp["equal"], "tables": cmp["tables"]},
    }

    # 4: nightly incremental (history = 365 days through the whole pipeline, then 1 day
    # appended) vs a full refresh of the 366 days
    if "incremental" not in skip:
        inc_runs, full_runs = [], []
        for i in range(reps):
            copy_db(marts_db, wh)
            parts = [runner.step(f"inc_ingest-{i}", "ingest", {}, plus1, wh)]
            # exactly the arguments of the nightly Dagster run (unit tests excluded, data
            # tests of the big tables on the night's loads only)
            parts.append(runner.dbt(f"inc_dbt-{i}", [*nightly_dbt_args(wh), "--quiet"], plus1, wh))
            inc_runs.append(_sum(parts))
            fresh_db(wh)
            shutil.rmtree(plus1 / "artifacts", ignore_errors=True)
            parts = [runner.step(f"full_ingest-{i}", "ingest", {}, plus1, wh),
                     runner.dbt(f"full_dbt-{i}", ["build", "--quiet"], plus1, wh)]
            full_runs.append(_sum(parts))
        sections["nightly_incremental"] = {
            "incremental": stats_of(inc_runs), "full_refresh": stats_of(full_runs),
            "ratio_wall": ratio(stats_of(inc_runs)["wall_s"]["median"], stats_of(full_runs)["wall_s"]["median"]),
            "ratio_cpu": ratio(stats_of(inc_runs)["cpu_s"]["median"], stats_of(full_runs)["cpu_s"]["median"]),
            "target": "<= 0.10",
            "note": "the incremental night runs dbt with the nightly run's arguments "
                    "(nightjar/dbt_args.py: no unit tests, data tests on the night's "
                    "loads) over the models' incremental paths; 'full' = empty warehouse, all 366 "
                    "days, plain `dbt build`. Parts: [both dlt loads in one process (as the nightly "
                    "job's in-process executor runs them; events_op_wall_s/shop_op_wall_s inside), dbt].",
        }

    # 5: the nightly job through Dagster vs its steps run directly (both from empty)
    if "dagster" not in skip:
        dag_runs, direct_runs = [], []
        for i in range(reps):
            fresh_db(wh)
            shutil.rmtree(base / "artifacts", ignore_errors=True)
            parts = [runner.step(f"direct_events-{i}", "events_dlt", {}, base, wh),
                     runner.step(f"direct_shop-{i}", "shop_dlt", {}, base, wh),
                     runner.dbt(f"direct_dbt-{i}", ["build", "--quiet"], base, wh)]
            direct_runs.append(_sum(parts))
            fresh_db(wh)
            shutil.rmtree(base / "artifacts", ignore_errors=True)
            env = runner.env(base, wh)
            env.pop("DBT_TARGET_PATH", None)  # Dagster uses the project's prepared manifest
            dag_runs.append(runner.run(f"dagster_run-{i}", [str(BIN / "nightjar"), "run", "--select", DAGSTER_SELECTION],
                                       env))
        dmed = stats_of(dag_runs)["wall_s"]["median"]
        smed = stats_of(direct_runs)["wall_s"]["median"]
        sections["orchestration"] = {
            "nightjar_run": stats_of(dag_runs), "direct_sum": stats_of(direct_runs),
            "overhead_wall_s": round(dmed - smed, 3),
            "overhead_cpu_s": round(stats_of(dag_runs)["cpu_s"]["median"] - stats_of(direct_runs)["cpu_s"]["median"], 3),
            "ratio_wall": ratio(dmed, smed),
            "target": "overhead well under 60 s",
            "selection": DAGSTER_SELECTION,
        }

    # 6: peak memory per step (max over reps)
    peaks = {}
    for name, runs in (("events_dlt", ev_dlt), ("events_duckdb", ev_duck), ("shop_dlt", shop_dlt),
                       ("shop_direct", shop_duck), ("dbt_build", dbt_runs), ("handwritten", hw_runs)):
        peaks[name] = max(r["max_rss_mb"] for r in runs)
    if "orchestration" in sections:
        peaks["nightjar_run"] = sections["orchestration"]["nightjar_run"]["max_rss_mb"]["max"]
    sections["peak_rss_mb"] = peaks
    result.update(sections)
    result["bench_seconds"] = round(time.perf_counter() - started, 1)
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    for p in (raw_db, marts_db, wh):
        fresh_db(p)
    return result


def run_pipeline_only(
    scale_name: str = "L",
    work: Path | None = None,
    memory_limit: str | None = "4GB",
    threads: int | None = None,
    night: bool = False,
) -> dict:
    """The scale's pipeline once (events ingest, shop ingest, full ``dbt build``) on one
    warehouse: no baselines and no warehouse copies. For L, where the comparisons'
    copies (~20 GB of raw layer each at L) do not fit on the disk; what it shows is that every
    step completes within DuckDB's memory_limit (spilling to the run's spill/ dir), and at
    what time, CPU, peak RSS and disk.

    With ``night``, one day is then appended to the shop in place (new files, late files,
    status changes) and the nightly run (ingest, then dbt with the nightly Dagster run's
    arguments) goes on the same warehouse: the night's cost against the full refresh
    without a second copy of the warehouse."""
    scale = SCALES[scale_name]
    work = (work or REPO_ROOT / "benchmarks" / "out").resolve()
    started = time.perf_counter()
    run_dir, runner, result = _start_run(scale, f"{scale.name}-pipeline", work, memory_limit, threads)
    base, _plus1, meta = ensure_shop(runner, scale, work, with_plus1=False)
    result["data"] = {"simulate": meta["simulate"], "landing_mb": _landing_mb(base)}
    runner.dbt("dbt-parse", ["parse", "--quiet"], base, run_dir / "parse.duckdb")
    wh = fresh_db(run_dir / "wh.duckdb")
    shutil.rmtree(base / "artifacts", ignore_errors=True)
    steps = {"events_dlt": runner.step("events_dlt", "events_dlt", {}, base, wh)}
    # the load packages (a parquet copy of the raw rows) are dropped by the next run anyway
    shutil.rmtree(base / "artifacts", ignore_errors=True)
    steps["shop_dlt"] = runner.step("shop_dlt", "shop_dlt", {}, base, wh)
    result["warehouse_mb_after_ingest"] = round(wh.stat().st_size / 1e6, 1)
    steps["dbt_build"] = runner.dbt("dbt_build", ["build", "--quiet"], base, wh)
    result["warehouse_mb_after_dbt"] = round(wh.stat().st_size / 1e6, 1)
    result["steps"] = steps
    result["total"] = _sum(list(steps.values()))
    if night:
        # the base shop changes: its marker goes, so a later run simulates it afresh
        (base / ".bench_complete").unlink()
        result["data"]["append"] = runner.step(f"append-{scale.name}", "simulate",
                                               {"out": str(base), "append_days": 1}, base, run_dir / "x.duckdb")
        shutil.rmtree(base / "artifacts", ignore_errors=True)
        night_steps = [runner.step("night_ingest", "ingest", {}, base, wh)]
        night_steps.append(runner.dbt("night_dbt", [*nightly_dbt_args(wh), "--quiet"], base, wh))
        result["night"] = {"steps": night_steps, "total": _sum(night_steps)}
        result["night_ratio_wall"] = ratio(result["night"]["total"]["wall_s"], result["total"]["wall_s"])
        result["night_ratio_cpu"] = ratio(result["night"]["total"]["cpu_s"], result["total"]["cpu_s"])
    result["peak_rss_mb"] = {k: v["max_rss_mb"] for k, v in steps.items()}
    result["completed"] = True  # a failed step raises (its log is under run_dir/logs)
    result["bench_seconds"] = round(time.perf_counter() - started, 1)
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    fresh_db(wh)
    return result


def _sum(parts: list[dict]) -> dict:
    return {
        "wall_s": round(sum(p["wall_s"] for p in parts), 3),
        "cpu_s": round(sum(p["cpu_s"] for p in parts), 3),
        "max_rss_mb": max(p["max_rss_mb"] for p in parts),
        "load_avg_before": parts[0]["load_avg_before"],
        "parts_wall_s": [p["wall_s"] for p in parts],
        # inside the one-process ingest step: each load's own time
        **{k: p[k] for p in parts for k in ("events_op_wall_s", "shop_op_wall_s") if k in p},
    }
