"""Which days alert baselines should not learn from, and which days rules may skip.

A same-weekday or trailing-window baseline that contains Christmas week or a public
holiday expects a peak (or a lull) that the next ordinary day does not have; compared
with it, a normal January day looks like an incident. The calendar marks:

* **holiday-affected days** — the country's public holidays (the maintained `holidays`
  package, country ``NIGHTJAR_HOLIDAY_COUNTRY``, default US), the day after each, and the
  whole year-end stretch 24 December – 3 January (Christmas, New Year and the first working
  days after them, when shops and shoppers are away in most countries);
* **peak season** — Black Friday (the day after the fourth Thursday of November) to
  31 December, when retail traffic runs far above the rest of the year.

Rules of type `change` and `anomaly` leave holiday-affected days out of their baselines,
and peak-season days too unless the evaluated day is itself in peak season (like is
compared with like). With ``holidays: skip`` a rule is also not evaluated on a
holiday-affected day. The parameter is documented in nightjar/alerts/README.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import holidays as holidays_lib

_YEAR_END = ((12, 24), (1, 3))  # inclusive, wraps around New Year


def black_friday(year: int) -> date:
    """The day after the fourth Thursday of November."""
    first = date(year, 11, 1)
    first_thu = first + timedelta(days=(3 - first.weekday()) % 7)
    return first_thu + timedelta(days=22)


def _in_year_end(d: date) -> bool:
    (m1, d1), (m2, d2) = _YEAR_END
    return (d.month, d.day) >= (m1, d1) or (d.month, d.day) <= (m2, d2)


@dataclass(frozen=True)
class HolidayCalendar:
    """Holiday-affected days and peak season of one country (``country=""``: no calendar)."""

    country: str = "US"

    @property
    def enabled(self) -> bool:
        return bool(self.country)

    def holiday_name(self, d: date) -> str | None:
        """The public holiday on `d`, if any."""
        if not self.enabled:
            return None
        return _country_holidays(self.country, d.year).get(d)

    def reason(self, d: date) -> str | None:
        """Why `d` is holiday-affected (None: an ordinary day)."""
        if not self.enabled:
            return None
        if _in_year_end(d):
            return "year-end holidays"
        name = self.holiday_name(d)
        if name:
            return name
        before = self.holiday_name(d - timedelta(days=1))
        return f"day after {before}" if before else None

    def affected(self, d: date) -> bool:
        return self.reason(d) is not None

    def peak_season(self, d: date) -> bool:
        return self.enabled and black_friday(d.year) <= d <= date(d.year, 12, 31)

    def usable_reference(self, ref: date, evaluated: date) -> bool:
        """May `ref` be part of the baseline of `evaluated`?"""
        if not self.enabled:
            return True
        if self.affected(ref):
            return False
        return not self.peak_season(ref) or self.peak_season(evaluated)


@lru_cache(maxsize=64)
def _country_holidays(country: str, year: int) -> dict[date, str]:
    try:
        return dict(holidays_lib.country_holidays(country, years=[year]).items())
    except NotImplementedError as exc:
        raise ValueError(f"NIGHTJAR_HOLIDAY_COUNTRY={country!r} is not a country the `holidays` package knows "
                         "(use an ISO 3166 code such as US, GB, DE; empty or 'none' turns the calendar off)") from exc


def calendar_for(country: str | None) -> HolidayCalendar:
    """The calendar of `country` ('' / 'none': disabled); an unknown code is an error now, not at 2 a.m."""
    code = (country or "").strip()
    if code.lower() in ("", "none", "off"):
        return HolidayCalendar("")
    cal = HolidayCalendar(code.upper())
    _country_holidays(cal.country, 2000)
    return cal


def default_calendar() -> HolidayCalendar:
    from nightjar.settings import get_settings

    return calendar_for(get_settings().holiday_country)
