"""Forecasters with one interface: ``fit_predict(y, horizon) -> DataFrame(ds, yhat, yhat_lower, yhat_upper)``.

All forecasts are clamped at 0 (demand and revenue are not negative) and intervals are
80% unless asked otherwise.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy.stats import norm
from threadpoolctl import threadpool_limits

LEVEL = 0.8
# BLAS threads: these fits are tiny (a few hundred points); on the shared 2-core machine a
# second OpenBLAS thread spin-waits and made an ETS fit ~6x slower (2.0 s vs 0.34 s).
BLAS_THREADS = 1


def silence_prophet_logging() -> None:
    """Mute cmdstanpy's per-fit INFO lines and prophet's import/warning chatter.

    Both libraries (re)configure their loggers when imported (cmdstanpy adds a handler,
    prophet sets its level to INFO), so they are imported first and muted afterwards.
    Prophet's yearly-seasonality-with-<2-years warning is expected (we choose fewer Fourier
    terms deliberately). Real failures still raise exceptions.
    """
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL + 1)  # "plotly missing" at import
    import cmdstanpy  # noqa: F401
    import prophet  # noqa: F401

    for name in ("cmdstanpy", "prophet", "prophet.models", "prophet.plot"):
        lg = logging.getLogger(name)
        if name == "cmdstanpy":
            lg.handlers.clear()
            lg.addHandler(logging.NullHandler())
        lg.setLevel(logging.CRITICAL + 1)
        lg.propagate = False


class Forecaster(Protocol):
    name: str

    def fit_predict(self, y: pd.Series, horizon: int) -> pd.DataFrame: ...


def _frame(index: pd.DatetimeIndex, yhat, lower, upper) -> pd.DataFrame:
    df = pd.DataFrame({"ds": index, "yhat": yhat, "yhat_lower": lower, "yhat_upper": upper})
    for c in ("yhat", "yhat_lower", "yhat_upper"):
        df[c] = np.clip(np.asarray(df[c], float), 0, None)
    return df


def _future_index(y: pd.Series, horizon: int) -> pd.DatetimeIndex:
    return pd.date_range(y.index[-1] + pd.Timedelta(days=1), periods=horizon, freq="D")


@dataclass
class SeasonalNaive:
    """y(t+h) = y of the same weekday in the last observed week.

    Interval: normal with the in-sample seasonal-difference spread, widened by sqrt(k+1)
    for the k-th week ahead (the textbook seasonal-naive variance).
    """

    period: int = 7
    level: float = LEVEL
    name: str = "seasonal_naive"

    def fit_predict(self, y: pd.Series, horizon: int) -> pd.DataFrame:
        v = y.to_numpy(float)
        last = v[-self.period :]
        h = np.arange(horizon)
        yhat = last[h % self.period]
        resid = v[self.period :] - v[: -self.period]
        sigma = float(np.std(resid)) if len(resid) > 1 else 0.0
        k = h // self.period
        half = norm.ppf(0.5 + self.level / 2) * sigma * np.sqrt(k + 1)
        return _frame(_future_index(y, horizon), yhat, yhat - half, yhat + half)


@dataclass
class ETS:
    """Additive-error ETS with damped additive trend and weekly additive seasonality (statsmodels)."""

    period: int = 7
    level: float = LEVEL
    name: str = "ets"

    def fit_predict(self, y: pd.Series, horizon: int) -> pd.DataFrame:
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel

        data = pd.Series(y.to_numpy(float), index=pd.RangeIndex(len(y)))
        seasonal = "add" if len(y) >= 2 * self.period + 2 else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter on flat or tiny series
            with threadpool_limits(BLAS_THREADS):
                try:
                    # Heuristic initial states (from the first cycles) instead of estimating them:
                    # 4 parameters to optimise instead of 13, ~50x faster for a similar fit.
                    res = ETSModel(
                        data, error="add", trend="add", damped_trend=True, seasonal=seasonal,
                        seasonal_periods=self.period if seasonal else None,
                        initialization_method="heuristic" if seasonal else "estimated",
                    ).fit(disp=False, maxiter=200)
                except Exception:  # noqa: BLE001 — fall back to simple exponential smoothing
                    res = ETSModel(data, error="add").fit(disp=False)
                pred = res.get_prediction(start=len(y), end=len(y) + horizon - 1)
                frame = pred.summary_frame(alpha=1 - self.level)
        return _frame(_future_index(y, horizon), frame["mean"], frame["pi_lower"], frame["pi_upper"])


@dataclass
class ProphetForecaster:
    """Prophet with weekly + yearly seasonality and country holidays.

    Yearly seasonality needs a year of data to be identifiable: it is on from 365 days of
    history (with fewer Fourier terms below two years, to avoid wiggles fitted to one cycle).
    ``seed`` fixes the uncertainty sampling so intervals are reproducible.
    """

    country_holidays: str | None = "US"
    level: float = LEVEL
    seed: int = 0
    uncertainty_samples: int = 300
    name: str = "prophet"
    last_model: Any = field(default=None, repr=False)

    def fit_predict(self, y: pd.Series, horizon: int) -> pd.DataFrame:
        silence_prophet_logging()
        from prophet import Prophet

        n = len(y)
        yearly: bool | int = False if n < 365 else (True if n >= 730 else 5)
        m = Prophet(
            weekly_seasonality=True,
            yearly_seasonality=yearly,
            daily_seasonality=False,
            interval_width=self.level,
            uncertainty_samples=self.uncertainty_samples,
        )
        if self.country_holidays:
            m.add_country_holidays(country_name=self.country_holidays)
        df = pd.DataFrame({"ds": y.index, "y": y.to_numpy(float)})
        with threadpool_limits(BLAS_THREADS):
            m.fit(df, seed=self.seed)  # seed goes to cmdstan's optimiser
            np.random.seed(self.seed)  # uncertainty sampling in predict() uses numpy's global RNG
            fc = m.predict(pd.DataFrame({"ds": _future_index(y, horizon)}))
        self.last_model = m
        return _frame(pd.DatetimeIndex(fc["ds"]), fc["yhat"], fc["yhat_lower"], fc["yhat_upper"])


def default_models(seed: int = 0, country_holidays: str | None = "US") -> list[Forecaster]:
    return [ProphetForecaster(country_holidays=country_holidays, seed=seed), SeasonalNaive(), ETS()]


def model_by_name(name: str, seed: int = 0, country_holidays: str | None = "US") -> Forecaster:
    for m in default_models(seed, country_holidays):
        if m.name == name:
            return m
    raise KeyError(name)
