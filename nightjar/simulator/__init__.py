"""Synthetic shop simulator behind `nightjar simulate` (DESIGN.md §1, §4).

Writes, for a configurable period, the raw event landing files, the shop's SQLite
database and a `ground_truth.json` with the planted incidents, every customer's latent
churn state and the counts of injected dirt. `append_days` continues the same world.

Modules: config (SimConfig), seasonality (calendar multipliers), reference (geo, devices,
channels), catalog (products), population (customers, engagement, churn), sessions
(events of one session), dirt (duplicates, malformed lines, disorder), landing (files),
shopdb (SQLAlchemy schema and writes), engine (the day loop and world state).
"""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from .config import SimConfig
from .engine import World, create_world, default_start, fresh_output, run_days


def simulate(
    out: Path,
    start: date | None = None,
    days: int = 730,
    customers: int = 5000,
    seed: int = 42,
    config: SimConfig | None = None,
) -> dict[str, Any]:
    """Write a fresh synthetic shop into `out` (replacing the simulator's previous output).

    `start=None` makes the shop end yesterday (UTC). `customers` is the expected number of
    customers at the end of the period (25 % exist before `start`, the rest sign up)."""
    if days < 1:
        raise ValueError("days must be >= 1")
    if customers < 1:
        raise ValueError("customers must be >= 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fresh_output(out)
    start = start or default_start(days)
    world = create_world(out, start, days, customers, seed, config or SimConfig())
    return run_days(world, days, "simulate")


def append_days(out: Path, days: int) -> dict[str, Any]:
    """Continue the world in `out` by `days` days: new files, late files for past days,
    new customers and orders, and status changes/refunds of older orders."""
    if days < 1:
        raise ValueError("days must be >= 1")
    world = World.load(Path(out))
    return run_days(world, days, "append")


__all__ = ["SimConfig", "simulate", "append_days"]
