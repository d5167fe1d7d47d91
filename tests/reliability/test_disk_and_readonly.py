"""Guarantee: a full disk or a read-only / locked warehouse gives a clear error and never
corrupts the existing warehouse; once the condition is gone the next run catches up.

Disk full and read-only file systems are real: a size-capped tmpfs and a read-only bind
mount (we run as root, so chmod would not stop us). Skipped, with the reason, where mounting
is not permitted.
"""
from __future__ import annotations

import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from .helpers import PYTHON, copy_shop, copy_warehouse, dbt_inprocess, diff_hashes, table_hashes


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


@contextmanager
def _mounted(target: Path, *args: str):
    target.mkdir(parents=True, exist_ok=True)
    try:
        _mount(*args, str(target))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount here ({getattr(exc, 'stderr', '') or exc}); needs root/CAP_SYS_ADMIN")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def _settings(data_dir: Path, warehouse: Path):
    from nightjar.settings import get_settings

    return get_settings({"NIGHTJAR_DATA_DIR": str(data_dir), "NIGHTJAR_WAREHOUSE": str(warehouse)})


def _no_space(exc: BaseException) -> bool:
    text = f"{exc} {exc.__cause__ or ''} {exc.__context__ or ''}".lower()
    return "no space left" in text or "could not write" in text or "disk" in text


@pytest.mark.slow
def test_disk_full_during_ingestion_and_dbt(night, tmp_path):
    from nightjar.ingest import load_events, load_shop

    work = copy_shop(night.template, tmp_path / "data")
    raw_size = night.raw_only.stat().st_size
    with _mounted(tmp_path / "small", "-t", "tmpfs", "-o", "size=2m", "tmpfs") as mnt:
        settings = _settings(work, mnt / "warehouse.duckdb")
        # 1) ingestion into a 2 MB disk (needs ~8 MB): a clear error, no half-written state
        with pytest.raises(Exception) as info:
            load_events(settings)
            load_shop(settings)
        assert _no_space(info.value), repr(info.value)
        _mount("-o", f"remount,size={raw_size // 2**20 + 64}m", str(mnt))
        load_events(settings), load_shop(settings)
        assert diff_hashes(night.raw_hashes, table_hashes(settings.warehouse, schemas=("raw",))) == {}

    with _mounted(tmp_path / "tight", "-t", "tmpfs", "-o", f"size={raw_size // 2**20 + 2}m", "tmpfs") as mnt:
        wh = copy_warehouse(night.raw_only, mnt / "warehouse.duckdb")
        # 2) dbt build with ~2 MB free (it needs ~6 MB more): fails, raw layer intact
        out = dbt_inprocess(wh, "build", work_dir=tmp_path / "dbt")
        assert not out.success
        text = " ".join([str(out.exception or ""), *out.messages.values()])
        assert "no space left" in text.lower() or "could not write" in text.lower() or "disk" in text.lower(), text[:2000]
        assert diff_hashes(night.raw_hashes, table_hashes(wh, schemas=("raw",))) == {}
        _mount("-o", f"remount,size={raw_size // 2**20 + 64}m", str(mnt))
        out = dbt_inprocess(wh, "build", work_dir=tmp_path / "dbt")
        assert out.success, out.failures()
        assert diff_hashes(night.hashes, table_hashes(wh)) == {}


@pytest.mark.slow
def test_read_only_warehouse_fails_clearly_and_is_untouched(night, tmp_path):
    from nightjar.ingest import load_events
    from nightjar.simulator import append_days

    work = copy_shop(night.template, tmp_path / "data")
    append_days(work, 1)  # something new to load
    whdir = tmp_path / "wh"
    wh = copy_warehouse(night.reference, whdir / "warehouse.duckdb")
    before = table_hashes(wh, exclude=frozenset())
    settings = _settings(work, wh)
    # a read-only file system (bind mount remounted ro)
    with _mounted(whdir, "--bind", str(whdir)):
        _mount("-o", "remount,ro,bind", str(whdir))
        with pytest.raises(Exception) as info:
            load_events(settings)
        text = str(info.value).lower()
        assert "read-only" in text or "permission" in text or "cannot open" in text, text
        out = dbt_inprocess(wh, "build", work_dir=tmp_path / "dbt")
        assert not out.success
    assert table_hashes(wh, exclude=frozenset()) == before

    # another process holding the file (e.g. a BI tool with a read-only connection open)
    holder = subprocess.Popen([PYTHON, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
                               "print('ready', flush=True); time.sleep(60)", str(wh)],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(Exception) as info:
            load_events(settings)
        assert "lock" in str(info.value).lower(), str(info.value)
    finally:
        holder.kill()
        holder.wait()
    assert table_hashes(wh, exclude=frozenset()) == before
    # the condition is gone: the next run loads the new day
    summary = load_events(settings)
    assert summary["files_loaded"] > 0 and summary["rows_loaded"] > 0
    shutil.rmtree(tmp_path / "dbt", ignore_errors=True)
