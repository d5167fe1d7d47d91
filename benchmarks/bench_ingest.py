"""Events ingestion throughput: N synthetic lines in gzip landing files -> raw.events.

    .venv/bin/python benchmarks/bench_ingest.py --lines 1000000 --files 10

Writes its data under benchmarks/out/ (git-ignored) unless --out is given; prints the
generation time, the load time and rows/s of `load_events` (extract + normalize + load),
plus peak RSS.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import shutil
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nightjar.ingest import load_events  # noqa: E402
from nightjar.settings import get_settings  # noqa: E402

NAMES = ["page_viewed", "product_viewed", "product_added_to_cart", "checkout_started",
         "purchase_completed", "search_performed", "user_identified"]


def make_event(i: int, rnd: random.Random) -> dict:
    day = 1 + i % 28
    ev = {
        "event_id": f"e_{i:010d}",
        "event_name": rnd.choice(NAMES),
        "timestamp": f"2025-01-{day:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}.{i % 1000:03d}+01:00",
        "received_at": f"2025-01-{day:02d}T{(i % 24):02d}:{i % 60:02d}:{(i * 7) % 60:02d}.{(i + 5) % 1000:03d}+01:00",
        "anonymous_id": f"anon_{i % 50000:06d}",
        "user_id": f"c_{i % 20000:06d}" if i % 3 == 0 else None,
        "session_id": f"s_{i // 15:08d}",
        "properties": {"product_id": f"p_{i % 500:04d}", "category": "shoes", "price": round(rnd.uniform(5, 300), 2)},
        "context": {
            "page": {"url": f"https://shop.example.com/p/{i % 500}", "path": f"/p/{i % 500}",
                     "referrer": "https://www.google.com/", "title": "Product"},
            "campaign": {"source": "google", "medium": "cpc", "name": "winter"},
            "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0",
            "locale": "en-GB", "timezone": "Europe/London",
            "screen": {"width": 1920, "height": 1080}, "geo": {"country": "GB", "city": "London"},
        },
    }
    if i % 1000 == 999:  # 0.1% bad lines
        return "{broken json"  # type: ignore[return-value]
    return ev


def generate(events_dir: Path, lines: int, files: int, seed: int = 7) -> int:
    rnd = random.Random(seed)
    per_file = lines // files
    total = 0
    for f in range(files):
        part = events_dir / f"dt=2025-01-{1 + f % 28:02d}"
        part.mkdir(parents=True, exist_ok=True)
        buf = bytearray()
        for i in range(total, total + per_file):
            ev = make_event(i, rnd)
            buf += ev.encode() if isinstance(ev, str) else orjson.dumps(ev)
            buf += b"\n"
        with gzip.open(part / f"batch-{f:04d}.jsonl.gz", "wb", compresslevel=1) as fh:
            fh.write(buf)
        total += per_file
    return total


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--keep", action="store_true", help="reuse generated files if present")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "ingest")
    args = ap.parse_args()
    settings = get_settings({"NIGHTJAR_DATA_DIR": str(args.out)})
    t0 = time.perf_counter()
    if args.keep and settings.events_dir.is_dir():
        n = (args.lines // args.files) * args.files
        shutil.rmtree(settings.dlt_pipelines_dir, ignore_errors=True)
        settings.warehouse.unlink(missing_ok=True)
    else:
        shutil.rmtree(args.out, ignore_errors=True)
        n = generate(settings.events_dir, args.lines, args.files)
    gen_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), _cpu()
    summary = load_events(settings)
    load_s, cpu_s = time.perf_counter() - t0, _cpu() - c0
    assert summary["lines_read"] == n, summary
    assert summary["rows_loaded"] + summary["rows_rejected"] == n
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "lines": n, "files": args.files, "generate_s": round(gen_s, 2), "load_s": round(load_s, 2),
        "rows_per_s": round(n / load_s), "cpu_s": round(cpu_s, 2), "rows_per_cpu_s": round(n / cpu_s),
        "loadavg_1m": os.getloadavg()[0], "rows_loaded": summary["rows_loaded"],
        "rows_rejected": summary["rows_rejected"], "peak_rss_mb": round(peak_mb),
    }))


if __name__ == "__main__":
    main()
