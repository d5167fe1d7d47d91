"""Predicted customer lifetime value over a horizon: BG/NBD × Gamma-Gamma.

* Purchases: the BG/NBD fit of ``ml/churn/bgnbd.py`` on every customer's history, and its
  conditional expectation E[X(T, T + t) | x, t_x, T] (Fader, Hardie & Lee 2005, eq. 10).
* Average order value: the Gamma-Gamma model (Fader, Hardie & Lee 2005, "RFM and CLV")
  fitted on repeat buyers' (x, mean repeat value). It assumes spend per order independent
  of purchase frequency; the Pearson correlation of the two among repeat buyers is
  measured, and above ``max_abs_correlation`` (or when the fit fails or has q ≤ 1, which
  leaves the mean undefined) each customer's own mean order value is used instead
  (``aov_model = "empirical"``).
* CLV = purchases × average order value, in USD, undiscounted: the horizon is short and
  the evaluation compares it with the spend actually observed over the same horizon.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ml.churn import bgnbd
from ml.churn.bgnbd import DAYS_PER_UNIT, BGNBDParams
from ml.value.history import rfm

# Below this many repeat buyers a Gamma-Gamma fit is noise; also the floor for fitting at all.
MIN_REPEAT_BUYERS = 20
# |corr(frequency, mean spend)| above which Gamma-Gamma's independence assumption is rejected.
MAX_ABS_CORRELATION = 0.3


class TooLittleHistory(ValueError):
    """Not enough customers or repeat purchases to fit the models."""


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    v: float  # γ in the paper; `v` in lifetimes
    n_customers: int = 0
    penalizer: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def conditional_mean(self, x: np.ndarray, mean_value: np.ndarray) -> np.ndarray:
        """E[Z | x, z̄]: the population mean pγ/(q−1) shrunk towards z̄ with weight px/(px+q−1)."""
        x = np.asarray(x, float)
        z = np.nan_to_num(np.asarray(mean_value, float))
        weight = self.p * x / (self.p * x + self.q - 1)
        return (1 - weight) * self.p * self.v / (self.q - 1) + weight * z


def fit_gamma_gamma(x: np.ndarray, mean_value: np.ndarray, penalizers: tuple[float, ...] = bgnbd.PENALIZERS) -> GammaGammaParams:
    """Maximum-likelihood p, q, γ on repeat buyers (x > 0) with a positive mean value.

    As for BG/NBD, a tiny penalty is tried only when the plain fit fails: customers whose
    mean spends barely differ drive q and γ to infinity (with pγ/(q−1) finite).
    """
    from lifetimes import GammaGammaFitter

    x, z = np.asarray(x, float), np.asarray(mean_value, float)
    keep = (x > 0) & np.isfinite(z) & (z > 0)
    if keep.sum() < MIN_REPEAT_BUYERS:
        raise TooLittleHistory(f"{int(keep.sum())} repeat buyers with a positive spend; Gamma-Gamma needs {MIN_REPEAT_BUYERS}")
    last: Exception | None = None
    for penalizer in penalizers:
        ggf = GammaGammaFitter(penalizer_coef=penalizer)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ggf.fit(x[keep], z[keep])
        except Exception as exc:  # noqa: BLE001 — lifetimes raises its own ConvergenceError
            last = exc
            continue
        p = ggf.params_
        return GammaGammaParams(float(p["p"]), float(p["q"]), float(p["v"]), int(keep.sum()), penalizer)
    raise GammaGammaFitError(f"Gamma-Gamma did not converge: {_first_line(last)}")


def _first_line(exc: Exception | None) -> str:
    text = str(exc).strip() if exc else ""
    return text.splitlines()[0] if text else type(exc).__name__


class GammaGammaFitError(RuntimeError):
    """The Gamma-Gamma likelihood could not be maximised."""


def frequency_spend_correlation(x: np.ndarray, mean_value: np.ndarray) -> float:
    """Pearson correlation of repeat purchases and mean repeat value among repeat buyers."""
    x, z = np.asarray(x, float), np.asarray(mean_value, float)
    keep = (x > 0) & np.isfinite(z)
    if keep.sum() < 3 or np.std(x[keep]) == 0 or np.std(z[keep]) == 0:
        return float("nan")
    return float(np.corrcoef(x[keep], z[keep])[0, 1])


def expected_purchases(params: BGNBDParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, t: float) -> np.ndarray:
    """E[X(T, T + t) | x, t_x, T], all times in weeks (lifetimes' implementation of eq. 10)."""
    from lifetimes import BetaGeoFitter

    bgf = BetaGeoFitter()
    bgf.params_ = pd.Series({"r": params.r, "alpha": params.alpha, "a": params.a, "b": params.b})
    with np.errstate(all="ignore"):
        out = bgf.conditional_expected_number_of_purchases_up_to_time(t, np.asarray(x, float), np.asarray(t_x, float), np.asarray(T, float))
    return np.clip(np.nan_to_num(np.asarray(out, float)), 0, None)


@dataclass
class CLVModel:
    bgnbd: BGNBDParams
    gamma_gamma: GammaGammaParams | None
    correlation: float
    aov_model: str  # "gamma_gamma" or "empirical"
    population_aov: float  # mean order value over all order days, for customers without history
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {
            "bgnbd": self.bgnbd.as_dict(),
            "gamma_gamma": self.gamma_gamma.as_dict() if self.gamma_gamma else None,
            "frequency_spend_correlation": self.correlation,
            "aov_model": self.aov_model,
            "population_aov": self.population_aov,
            "notes": self.notes,
        }


def fit(summary: pd.DataFrame, max_abs_correlation: float = MAX_ABS_CORRELATION) -> CLVModel:
    """Fit BG/NBD and (where its assumption holds) Gamma-Gamma on a ``history.summary_at`` frame."""
    if len(summary) == 0:
        raise TooLittleHistory("no customer has an order before the cutoff")
    x, t_x, T = rfm(summary)
    if int((x > 0).sum()) < MIN_REPEAT_BUYERS:
        raise TooLittleHistory(f"{int((x > 0).sum())} customers with a repeat purchase; CLV needs {MIN_REPEAT_BUYERS}")
    try:
        bg = bgnbd.fit(x, t_x, T)
    except bgnbd.BGNBDFitError as exc:
        raise TooLittleHistory(str(exc)) from exc
    z = summary["repeat_value"].to_numpy(float)
    corr = frequency_spend_correlation(x, z)
    population_aov = float(summary["revenue"].sum() / max(summary["order_days"].sum(), 1))
    notes: list[str] = []
    gg: GammaGammaParams | None = None
    if np.isfinite(corr) and abs(corr) > max_abs_correlation:
        notes.append(f"frequency and spend correlate ({corr:.2f}, |r| > {max_abs_correlation}): Gamma-Gamma not used")
    else:
        try:
            gg = fit_gamma_gamma(x, z)
        except (GammaGammaFitError, TooLittleHistory) as exc:
            notes.append(str(exc))
        if gg is not None and gg.penalizer:
            notes.append(f"Gamma-Gamma fitted with penalizer {gg.penalizer:g} (the plain fit did not converge)")
        if gg is not None and gg.q <= 1:
            notes.append(f"Gamma-Gamma q = {gg.q:.3f} <= 1 leaves the mean undefined")
            gg = None
    return CLVModel(bg, gg, corr, "gamma_gamma" if gg else "empirical", population_aov, notes)


def predict(model: CLVModel, summary: pd.DataFrame, horizon_days: float) -> pd.DataFrame:
    """Per customer: predicted purchases, average order value and CLV over ``horizon_days``."""
    x, t_x, T = rfm(summary)
    purchases = expected_purchases(model.bgnbd, x, t_x, T, horizon_days / DAYS_PER_UNIT)
    z = summary["repeat_value"].to_numpy(float)
    if model.gamma_gamma is not None:
        aov = model.gamma_gamma.conditional_mean(x, np.where(x > 0, z, 0.0))
    else:
        own = summary["revenue"].to_numpy(float) / summary["order_days"].to_numpy(float).clip(min=1)
        aov = np.where(np.isfinite(own), own, model.population_aov)
    aov = np.clip(aov, 0, None)
    return pd.DataFrame({
        "customer_id": summary["customer_id"].to_numpy(),
        "order_days": summary["order_days"].to_numpy(int),
        "historical_revenue": summary["revenue"].to_numpy(float),
        "p_alive": bgnbd.p_alive(model.bgnbd, x, t_x, T),
        "predicted_purchases": purchases,
        "predicted_avg_order_value": aov,
        "predicted_clv": purchases * aov,
    })


def naive_spend_rate(summary: pd.DataFrame, horizon_days: float) -> np.ndarray:
    """The "past spend rate" predictor: revenue per day of the customer's tenure × horizon.

    Tenure is floored at one week so a first order made just before the cutoff does not
    extrapolate to hundreds of orders.
    """
    tenure = summary["first_order_age_days"].to_numpy(float).clip(min=DAYS_PER_UNIT)
    return summary["revenue"].to_numpy(float) / tenure * horizon_days
