"""Throughput benchmark of the shop simulator (`nightjar simulate`).

Generates a shop of at least --events events (default 10 million) by scaling traffic
(SimConfig.traffic_scale) over --days days, then prints events/s and peak RSS. Memory is
bounded by one day of events, so --events 100000000 works too (it just takes ~10x longer;
spread it over more --days to keep the per-day volume, and hence RSS, down).

    .venv/bin/python benchmarks/bench_simulator.py                       # 10M events
    .venv/bin/python benchmarks/bench_simulator.py --events 100000000 --days 1460
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nightjar.simulator import SimConfig, simulate  # noqa: E402

# Measured on the default config: ~3,600 events per simulated day per 1,000 customers per
# unit of traffic_scale (730 days, 5,000 customers -> ~2.65M events).
EVENTS_PER_CUSTOMER_DAY = 0.73


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000, help="target number of events")
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--customers", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "simulator"))
    ap.add_argument("--keep", action="store_true", help="keep the generated shop")
    args = ap.parse_args()

    scale = max(1.0, args.events / (EVENTS_PER_CUSTOMER_DAY * args.customers * args.days))
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    cfg = SimConfig(traffic_scale=round(scale * 1.05, 2))  # 5 % headroom: the estimate is rough
    print(f"simulating {args.days} days, {args.customers} customers, traffic_scale={cfg.traffic_scale} -> {out}")
    t0, c0 = time.perf_counter(), time.process_time()
    summary = simulate(out, start=date(2023, 1, 1), days=args.days, customers=args.customers, seed=args.seed, config=cfg)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size_mb = sum(f.stat().st_size for f in (out / "landing").rglob("*") if f.is_file()) / 1e6
    events = summary["events"]
    print(f"events             {events:,}")
    print(f"lines written      {summary['lines_written']:,} (incl. duplicates and malformed)")
    print(f"orders             {summary['orders']:,}   customers {summary['customers']:,}   files {summary['files']:,}")
    print(f"wall time          {wall:,.1f} s   ({events / wall:,.0f} events/s)")
    print(f"cpu time           {cpu:,.1f} s   ({events / cpu:,.0f} events/s per core)")
    print(f"peak RSS           {rss_mb:,.0f} MiB")
    print(f"landing size       {size_mb:,.0f} MB gzip")
    print(f"machine            {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    return 0 if events >= args.events else 1


if __name__ == "__main__":
    sys.exit(main())
