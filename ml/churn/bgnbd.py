"""BG/NBD (Fader, Hardie & Lee 2005) as a churn baseline that scores the label itself.

The churn label is "no purchase in [T, T+H)", so the baseline's score is
P(X(T, T+H) = 0 | x, t_x, T), not 1 − P(alive): a customer without a repeat purchase has
P(alive) = 1 under BG/NBD (drop-out happens only right after a purchase), which made
1 − P(alive) exactly 0 for a large, mostly churning group.

Derivation. The individual likelihood splits into "alive at T" and "dropped out after the
x-th purchase" (FHL 2005, eq. 3). A customer alive at T with purchase rate λ makes no
purchase in (T, T+t] with probability exp(−λt), and cannot drop out without purchasing, so

    P(X(T, T+t) = 0 | x, t_x, T) = 1 − P(alive) + P(alive) · ((α + T) / (α + T + t))^(r + x)

with P(alive) = 1 / (1 + δ_{x>0} · a / (b + x − 1) · ((α + T) / (α + t_x))^(r + x)) — the
λ-posterior given "alive" is Gamma(r + x, α + T), whose Laplace transform at t is the factor.

Fitting uses ``lifetimes.BetaGeoFitter`` (maximum likelihood) with no penalty first; only
when the optimiser fails is a negligible one tried, and the one used is recorded.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

# Time unit of the fit: weeks keep α and t in the tens, where the optimiser converges reliably.
DAYS_PER_UNIT = 7.0
# Tried in order; 0 is plain maximum likelihood, the others only rescue a failed optimisation.
PENALIZERS = (0.0, 1e-6, 1e-4)


class BGNBDFitError(RuntimeError):
    """The BG/NBD likelihood could not be maximised."""


@dataclass(frozen=True)
class BGNBDParams:
    r: float
    alpha: float
    a: float
    b: float
    penalizer: float = 0.0
    n_customers: int = 0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def fit(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, penalizers: tuple[float, ...] = PENALIZERS) -> BGNBDParams:
    """Maximum-likelihood r, α, a, b from (repeat purchases, time of last purchase, age)."""
    from lifetimes import BetaGeoFitter

    x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
    keep = T > 0  # a customer whose first purchase is at the cutoff carries no information
    last: Exception | None = None
    for penalizer in penalizers:
        bgf = BetaGeoFitter(penalizer_coef=penalizer)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                bgf.fit(x[keep], t_x[keep], T[keep])
        except Exception as exc:  # noqa: BLE001 — lifetimes raises its own ConvergenceError
            last = exc
            continue
        p = bgf.params_
        params = BGNBDParams(float(p["r"]), float(p["alpha"]), float(p["a"]), float(p["b"]), penalizer, int(keep.sum()))
        if penalizer:
            log.warning("BG/NBD fitted with penalizer %g (unpenalised fit failed: %s)", penalizer, last)
        return params
    raise BGNBDFitError(f"BG/NBD did not converge: {str(last).splitlines()[0] if last else 'no data'}")


def p_alive(params: BGNBDParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    with np.errstate(divide="ignore", invalid="ignore"):
        log_term = np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    odds = np.where(x > 0, np.exp(np.minimum(log_term, 700)), 0.0)
    return 1.0 / (1.0 + odds)


def p_no_purchase(params: BGNBDParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, horizon: float) -> np.ndarray:
    """P(X(T, T + horizon) = 0 | x, t_x, T), all times in the fit's unit (weeks)."""
    x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
    alive = p_alive(params, x, t_x, T)
    quiet_if_alive = np.exp((params.r + x) * (np.log(params.alpha + T) - np.log(params.alpha + T + horizon)))
    return 1.0 - alive + alive * quiet_if_alive


def summary_from_features(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) in weeks from the churn feature frame at one cutoff.

    x = repeat purchases counted on distinct order days; T = first order → cutoff;
    t_x = first order → last order (0 without a repeat day).
    """
    x = (frame["order_days"].fillna(0) - 1).clip(lower=0).to_numpy(float)
    T = frame["first_order_age_days"].to_numpy(float) / DAYS_PER_UNIT
    t_x = np.where(x > 0, np.clip(T - frame["recency_days"].to_numpy(float) / DAYS_PER_UNIT, 0, None), 0.0)
    return x, t_x, T
