"""Benchmark scales: a year of history (365 days) of the simulated shop at ~10^k events."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Scale:
    name: str
    days: int
    customers: int
    traffic_scale: float
    approx_events: int

    start: date = date(2025, 1, 1)
    seed: int = 7


# The simulator gives ~360 events per customer over one year at traffic_scale 1
# (4,052 customers -> 1.45M events, measured); traffic_scale multiplies visits only.
SCALES = {
    "XS": Scale("XS", days=60, customers=150, traffic_scale=1.0, approx_events=20_000),
    "S": Scale("S", days=365, customers=2800, traffic_scale=1.0, approx_events=1_000_000),
    "M": Scale("M", days=365, customers=10_000, traffic_scale=2.8, approx_events=10_000_000),
    "L": Scale("L", days=365, customers=30_000, traffic_scale=9.3, approx_events=100_000_000),
}
