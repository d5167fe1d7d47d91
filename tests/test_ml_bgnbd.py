"""BG/NBD baseline: the published CDNOW fit, and P(no purchase within H) against simulation."""
from __future__ import annotations

import os
from pathlib import Path

import lifetimes
import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter

from ml.churn import bgnbd

CDNOW_SUMMARY = Path(os.path.dirname(lifetimes.__file__)) / "datasets" / "cdnow_customers_summary.csv"


def test_fit_recovers_fader_hardie_lee_2005_on_the_cdnow_sample():
    # The 2,357-customer sample's 39-week calibration period (x, t_x, T in weeks), fitted
    # as in the paper: plain maximum likelihood, no penalty.
    cal = pd.read_csv(CDNOW_SUMMARY)
    assert len(cal) == 2357
    params = bgnbd.fit(cal["frequency"], cal["recency"], cal["T"])
    assert params.penalizer == 0.0
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    for name, value in published.items():
        assert getattr(params, name) == pytest.approx(value, rel=0.02), name


def _simulate(params: bgnbd.BGNBDParams, n: int, T: float, horizon: float, seed: int) -> pd.DataFrame:
    """BG/NBD customers from their first purchase at 0 (FHL 2005, assumptions i–v): (x, t_x)
    on (0, T], and whether they buy in (T, T + horizon]."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(params.r, 1 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    t = np.zeros(n)
    alive = np.ones(n, bool)
    x = np.zeros(n)
    t_x = np.zeros(n)
    later = np.zeros(n, bool)
    for _ in range(400):
        if not alive.any():
            break
        t_next = t + rng.exponential(1 / np.maximum(lam, 1e-12))
        in_cal = alive & (t_next <= T)
        x[in_cal] += 1
        t_x[in_cal] = t_next[in_cal]
        later |= alive & (t_next > T) & (t_next <= T + horizon)
        # past T only the first purchase matters; drop-out happens right after a repeat purchase
        alive &= (t_next <= T) & (rng.random(n) >= p)
        t = t_next
    return pd.DataFrame({"x": x, "t_x": t_x, "T": T, "no_purchase": ~later})


def test_p_no_purchase_matches_simulated_customers():
    params = bgnbd.BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
    sim = _simulate(params, n=60_000, T=39.0, horizon=13.0, seed=1)
    pred = bgnbd.p_no_purchase(params, sim["x"], sim["t_x"], sim["T"], 13.0)
    # Calibrated within groups that 1 − P(alive) cannot tell apart: no repeat purchase
    # (P(alive) = 1) versus one or several repeats.
    groups = np.select([sim["x"] == 0, sim["x"] <= 2], ["none", "1-2"], "3+")
    for g in ("none", "1-2", "3+"):
        m = groups == g
        assert m.sum() > 1000
        assert pred[m].mean() == pytest.approx(sim["no_purchase"][m].mean(), abs=0.015), g
    # P(alive) agrees with lifetimes' own implementation.
    bgf = BetaGeoFitter()
    bgf.params_ = pd.Series({"r": params.r, "alpha": params.alpha, "a": params.a, "b": params.b})
    np.testing.assert_allclose(
        bgnbd.p_alive(params, sim["x"], sim["t_x"], sim["T"]),
        bgf.conditional_probability_alive(sim["x"], sim["t_x"], sim["T"]), rtol=1e-9,
    )
    # No repeat purchase: alive for sure, and P(no purchase) < 1 — unlike 1 − P(alive) = 0.
    none = groups == "none"
    assert np.allclose(bgnbd.p_alive(params, sim["x"][none], sim["t_x"][none], sim["T"][none]), 1.0)
    assert (pred[none] > 0.5).all() and (pred[none] < 1).all()
