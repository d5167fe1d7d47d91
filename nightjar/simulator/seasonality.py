"""Traffic multipliers by calendar day: growth, weekly and yearly seasonality, holidays.

The same multiplier drives sign-ups, visits and bots, so the weekly/yearly shape shows up
in every mart; categories get their own monthly profile on top (outdoor in summer, gifts
in December) so the demand forecast has per-series seasonality to find.
"""
from __future__ import annotations

import math
from datetime import date, timedelta
from functools import lru_cache

from .config import SimConfig

CATEGORIES: tuple[str, ...] = (
    "outdoor", "apparel", "electronics", "home", "beauty", "toys_gifts", "books", "sports",
)
# Monthly demand multipliers (Jan..Dec) per category.
CATEGORY_MONTHLY: dict[str, tuple[float, ...]] = {
    "outdoor": (0.5, 0.55, 0.8, 1.1, 1.4, 1.7, 1.8, 1.6, 1.1, 0.8, 0.6, 0.6),
    "apparel": (0.9, 0.85, 1.1, 1.1, 1.05, 1.0, 0.95, 1.0, 1.15, 1.1, 1.1, 1.2),
    "electronics": (0.9, 0.85, 0.9, 0.9, 0.9, 0.9, 0.95, 1.0, 1.0, 1.05, 1.6, 1.7),
    "home": (1.1, 1.0, 1.05, 1.1, 1.0, 0.95, 0.9, 0.95, 1.0, 1.0, 1.1, 1.2),
    "beauty": (1.0, 1.2, 1.0, 1.0, 1.05, 1.0, 0.95, 0.95, 1.0, 1.0, 1.1, 1.4),
    "toys_gifts": (0.7, 0.6, 0.7, 0.7, 0.8, 0.8, 0.8, 0.8, 0.9, 1.1, 1.6, 2.8),
    "books": (1.2, 1.0, 1.0, 0.95, 0.95, 1.05, 1.15, 1.1, 1.0, 0.95, 1.0, 1.2),
    "sports": (1.3, 1.1, 1.1, 1.1, 1.1, 1.0, 0.95, 0.9, 1.0, 0.9, 0.9, 1.0),
}


@lru_cache(maxsize=64)
def black_friday(year: int) -> date:
    """The day after the fourth Thursday of November."""
    first = date(year, 11, 1)
    first_thu = first + timedelta(days=(3 - first.weekday()) % 7)
    return first_thu + timedelta(days=21 + 1)


def holiday_multiplier(d: date, cfg: SimConfig) -> float:
    bf = black_friday(d.year)
    if d == bf:
        return cfg.black_friday_boost
    if d == bf + timedelta(days=3):
        return cfg.cyber_monday_boost
    if bf < d < bf + timedelta(days=3):
        return 1.0 + (cfg.black_friday_boost - 1.0) * 0.4  # the BF weekend
    if d.month == 12 and 1 <= d.day <= 22:
        return cfg.christmas_boost
    if d.month == 12 and d.day in (24, 25):
        return 0.7  # people are not shopping on Christmas Eve/Day ...
    if d.month == 12 and d.day == 26:
        return 1.25  # ... but they are on Boxing Day
    return 1.0


def traffic_multiplier(d: date, world_start: date, cfg: SimConfig) -> float:
    """Expected traffic on day d relative to an average weekday at the world's start."""
    weekly = cfg.weekly_profile[d.weekday()] / (sum(cfg.weekly_profile) / 7.0)
    doy = d.timetuple().tm_yday
    yearly = 1.0 + cfg.yearly_amplitude * math.cos(2 * math.pi * (doy - 355) / 365.25)
    growth = (1.0 + cfg.growth_per_year) ** ((d - world_start).days / 365.25)
    return weekly * yearly * holiday_multiplier(d, cfg) * growth


__all__ = ["CATEGORIES", "CATEGORY_MONTHLY", "traffic_multiplier", "holiday_multiplier", "black_friday"]
