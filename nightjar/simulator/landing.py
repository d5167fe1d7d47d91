"""Landing files: deterministic gzip batches, written atomically, some of them late.

Layout (DESIGN.md §1.1): <out>/landing/events/dt=YYYY-MM-DD/<batch>.jsonl.gz. A batch is
named after the moment it landed (batch-YYYYMMDDTHHMMZ-NN); a late batch for day D lands
1..3 days later, so its name carries the later stamp while it sits in dt=D. Late batches
wait in the simulator state until their landing day, which is how `append_days` makes
files appear in partitions of days that were already written.
"""
from __future__ import annotations

import gzip
import os
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

STATE_DIR = ".simulator_state"


def events_dir(out: Path) -> Path:
    return out / "landing" / "events"


def pending_dir(out: Path) -> Path:
    return out / STATE_DIR / "pending"


def batch_name(landed_ms: int, index: int, plain: bool) -> str:
    stamp = (datetime(1970, 1, 1) + timedelta(milliseconds=landed_ms)).strftime("%Y%m%dT%H%MZ")
    return f"batch-{stamp}-{index:02d}.jsonl{'' if plain else '.gz'}"


def encode(lines: list[str], plain: bool, level: int) -> bytes:
    data = ("\n".join(lines) + "\n").encode()
    # mtime=0 and no file name in the header: same input -> byte-identical file
    return data if plain else gzip.compress(data, compresslevel=level, mtime=0)


def write_atomic(path: Path, data: bytes) -> None:
    """Write under a hidden temporary name, then rename: loaders never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def partition(out: Path, day: date) -> Path:
    return events_dir(out) / f"dt={day.isoformat()}"


def hold_late(out: Path, land_day: int, day: date, name: str, data: bytes) -> None:
    write_atomic(pending_dir(out) / str(land_day) / f"dt={day.isoformat()}" / name, data)


def release_late(out: Path, up_to_day: int) -> list[str]:
    """Move held-back batches whose landing day has come into the landing area."""
    root = pending_dir(out)
    moved: list[str] = []
    if not root.exists():
        return moved
    for land_dir in sorted(root.iterdir(), key=lambda p: int(p.name)):
        if int(land_dir.name) > up_to_day:
            continue
        for f in sorted(land_dir.glob("dt=*/*")):
            target = events_dir(out) / f.parent.name / f.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, target)
            moved.append(f"{f.parent.name}/{f.name}")
        shutil.rmtree(land_dir)
    return moved


def pending_files(out: Path) -> list[str]:
    root = pending_dir(out)
    if not root.exists():
        return []
    return sorted(f"{f.parent.name}/{f.name}" for f in root.glob("*/dt=*/*"))
