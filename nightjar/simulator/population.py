"""Registered customers: latent engagement, pre-drawn churn day, devices, and daily visits.

Churn is drawn once, at sign-up (geometric with a hazard that falls with engagement), so
the future of every customer is fixed and the ground truth is exact. In the `fade_days`
before churn the visit rate ramps down to `fade_floor`; after churn a customer never
visits again. Engagement multiplies the visit rate, so engaged customers visit and buy
more: both repeat purchasing and churn are learnable from behaviour.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import SimConfig
from .reference import CHANNEL_ENGAGEMENT

_FIELDS: dict[str, type] = {
    "engagement": np.float64,
    "created_ms": np.int64,
    "churn_day": np.int64,  # first day (ordinal) without activity
    "geo": np.int16,
    "device0": np.int16,
    "device1": np.int16,  # -1: no second device
    "anon_day": np.int64,  # prospect key -> the anonymous_id of device 0
    "anon_j": np.int64,
    "channel": np.int8,  # acquisition channel index
}


class Population:
    """Column store with amortised appends (bounded by customers, never by events)."""

    def __init__(self, capacity: int = 1024) -> None:
        self.n = 0
        self.cols: dict[str, np.ndarray] = {k: np.zeros(capacity, dtype=t) for k, t in _FIELDS.items()}

    def __len__(self) -> int:
        return self.n

    def __getattr__(self, name: str) -> np.ndarray:
        cols = self.__dict__.get("cols")
        if cols is not None and name in cols:
            return cols[name][: self.n]
        raise AttributeError(name)

    def append(self, **values: float | int) -> int:
        if self.n == len(self.cols["engagement"]):
            for k, a in self.cols.items():
                grown = np.zeros(max(1024, 2 * len(a)), dtype=a.dtype)
                grown[: len(a)] = a
                self.cols[k] = grown
        i = self.n
        for k in _FIELDS:
            self.cols[k][i] = values[k]
        self.n += 1
        return i

    @staticmethod
    def draw_engagement(rng: np.random.Generator, channel: np.ndarray | int, cfg: SimConfig) -> np.ndarray:
        shift = np.asarray(CHANNEL_ENGAGEMENT)[channel]
        return np.exp(rng.normal(shift - cfg.engagement_sigma**2 / 2, cfg.engagement_sigma))

    @staticmethod
    def draw_churn_day(rng: np.random.Generator, engagement: np.ndarray | float, from_day: int, cfg: SimConfig) -> np.ndarray:
        hazard = np.clip(cfg.churn_hazard / np.power(engagement, cfg.churn_engagement_power), 1e-6, 0.5)
        return from_day + rng.geometric(hazard)

    def visit_counts(self, day: int, multiplier: float, rng: np.random.Generator, cfg: SimConfig) -> np.ndarray:
        """Sessions today per customer (Poisson, vectorised). Customers who sign up today
        are not yet in the store, and churned customers get rate 0."""
        n = self.n
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        churn = self.churn_day
        to_churn = (churn - day).astype(np.float64)
        fade = np.clip(cfg.fade_floor + (1 - cfg.fade_floor) * (to_churn - 1) / max(cfg.fade_days, 1), cfg.fade_floor, 1.0)
        lam = cfg.customer_visit_rate * cfg.traffic_scale * multiplier * self.engagement * fade
        lam[to_churn <= 0] = 0.0
        return rng.poisson(lam)

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, **{k: a[: self.n] for k, a in self.cols.items()})

    @classmethod
    def load(cls, path: Path) -> "Population":
        with np.load(path) as z:
            n = len(z["engagement"])
            pop = cls(capacity=max(1024, n + n // 2))
            for k in _FIELDS:
                pop.cols[k][:n] = z[k]
            pop.n = n
        return pop
