"""Fast ISO-8601 formatting of integer epoch milliseconds.

datetime.isoformat costs ~2 us per call; formatting two timestamps per event is the
single largest cost of the hot loop, so we format from integer arithmetic and cache the
date prefix per day.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

MS_PER_DAY = 86_400_000
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

_date_prefix: dict[int, str] = {}


def _prefix(epoch_day: int) -> str:
    s = _date_prefix.get(epoch_day)
    if s is None:
        s = date.fromordinal(EPOCH_ORDINAL + epoch_day).isoformat() + "T"
        _date_prefix[epoch_day] = s
    return s


# Lookup tables: "HH:MM:SS." for every second of a day and "mmm" for every millisecond.
_HMS = [f"{h:02d}:{m:02d}:{s:02d}." for h in range(24) for m in range(60) for s in range(60)]
_MS3 = [f"{i:03d}" for i in range(1000)]


def fmt_ms(ms: int, suffix: str = "Z", offset_ms: int = 0) -> str:
    """`ms` (UTC epoch ms) as local wall time at `offset_ms`, followed by `suffix` (Z or +hh:mm)."""
    d, r = divmod(ms + offset_ms, MS_PER_DAY)
    s, f = divmod(r, 1000)
    return (_date_prefix.get(d) or _prefix(d)) + _HMS[s] + _MS3[f] + suffix


def day_start_ms(day_ordinal: int) -> int:
    return (day_ordinal - EPOCH_ORDINAL) * MS_PER_DAY


def ms_to_naive_utc(ms: int) -> datetime:
    """For the shop database: naive UTC datetimes (ARCHITECTURE.md)."""
    return datetime(1970, 1, 1) + timedelta(milliseconds=ms)


def ms_to_iso_date(ms: int) -> str:
    return date.fromordinal(EPOCH_ORDINAL + ms // MS_PER_DAY).isoformat()


@lru_cache(maxsize=None)
def tz_offset(tz_name: str, day_ordinal: int) -> tuple[int, str]:
    """UTC offset of a zone at noon of a day: (offset in ms, suffix like '+02:00' or 'Z')."""
    d = date.fromordinal(day_ordinal)
    off = ZoneInfo(tz_name).utcoffset(datetime(d.year, d.month, d.day, 12))
    minutes = int(off.total_seconds() // 60) if off else 0
    if minutes == 0:
        return 0, "+00:00"  # explicit zero offset: valid ISO-8601, and a variant parsers must accept
    sign = "+" if minutes > 0 else "-"
    hh, mm = divmod(abs(minutes), 60)
    return minutes * 60_000, f"{sign}{hh:02d}:{mm:02d}"


__all__ = ["EPOCH_ORDINAL", "fmt_ms", "day_start_ms", "ms_to_naive_utc", "ms_to_iso_date", "tz_offset", "MS_PER_DAY"]
