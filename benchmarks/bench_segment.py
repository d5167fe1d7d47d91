"""Events load throughput of a Segment export against the same events delivered natively.

    .venv/bin/python benchmarks/bench_segment.py --scale S          # --keep reuses benchmarks/out/segment/

Simulates the shop of a `nightjar bench` scale (nightjar/bench/scales.py), writes its
native batch files again as a Segment export (`segment-logs/<source>/<received-day ms>/*.gz`,
messages by the tests' spec-based converter, tests/segment_messages.py), then runs
`load_events` on each into a fresh warehouse, each in its own process, and prints wall
time, CPU time (children included, from wait4), peak RSS and lines/s.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from nightjar.bench.scales import SCALES  # noqa: E402
from nightjar.simulator import SimConfig, simulate  # noqa: E402
from segment_messages import export_native_files  # noqa: E402

LOAD = "from nightjar.ingest import load_events; import json; s = load_events(); print(json.dumps({k: s[k] for k in ('files_loaded', 'lines_read', 'rows_loaded', 'rows_rejected')}))"


def timed_load(data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTJAR_")}
    env["NIGHTJAR_DATA_DIR"] = str(data_dir)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", LOAD], env=env, stdout=subprocess.PIPE, cwd=REPO)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"load_events failed in {data_dir}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result.update(wall_s=round(wall, 2), cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
                  peak_rss_mb=round(usage.ru_maxrss / 1024), lines_per_s=round(result["lines_read"] / wall))
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="S", choices=sorted(SCALES))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "segment")
    ap.add_argument("--keep", action="store_true", help="reuse the simulated shop and the export")
    args = ap.parse_args()
    scale = SCALES[args.scale]
    native, seg = args.out / f"{args.scale}-native", args.out / f"{args.scale}-segment"
    if not args.keep or not native.exists():
        shutil.rmtree(args.out, ignore_errors=True)
        simulate(native, start=scale.start, days=scale.days, customers=scale.customers, seed=scale.seed,
                 config=SimConfig(traffic_scale=scale.traffic_scale))
        (seg / "landing").mkdir(parents=True)
        print("exported", export_native_files(native / "landing" / "events", seg / "landing" / "segment-logs"), "files")
    for d in (native, seg):
        for leftover in ("warehouse.duckdb", "warehouse.duckdb.wal", "artifacts"):
            p = d / leftover
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    print(f"load average {os.getloadavg()[0]:.1f}")
    for name, d in (("native", native), ("segment", seg)):
        print(name, json.dumps(timed_load(d)))


if __name__ == "__main__":
    main()
