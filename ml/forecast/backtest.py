"""Rolling-origin backtests and accuracy metrics.

Folds: the forecast origin moves back from the end in steps of ``step`` days; each fold
trains on everything before its origin and predicts the next ``horizon`` days. The first
fold keeps at least ``initial`` days of training data (1 year when the history allows,
so yearly seasonality is learnable); only the latest ``max_folds`` folds are used to keep
nightly cost bounded.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.forecast.models import Forecaster

HORIZON = 28
STEP = 7
INITIAL = 365
MIN_INITIAL = 56  # 8 weeks: the least that shows a weekly pattern more than once


class SeriesTooShort(Exception):
    pass


@dataclass(frozen=True)
class FoldPlan:
    origins: list[int]  # index of the first forecast day in the series
    initial: int
    warning: str | None = None


def plan_folds(
    n: int, horizon: int = HORIZON, step: int = STEP, initial: int = INITIAL, max_folds: int = 8,
    min_initial: int = MIN_INITIAL,
) -> FoldPlan:
    warning = None
    if n < initial + horizon:
        if n < min_initial + horizon:
            raise SeriesTooShort(f"{n} days of history; a backtest needs at least {min_initial + horizon}")
        warning = f"only {n} days of history: initial training window shortened from {initial} to {min_initial} days"
        initial = min_initial
    last_origin = n - horizon
    origins = list(range(last_origin, initial - 1, -step))[:max_folds]
    return FoldPlan(origins=sorted(origins), initial=initial, warning=warning)


def mase_scale(train: np.ndarray, period: int = 7) -> float:
    """Mean absolute seasonal difference of the training data (Hyndman & Koehler)."""
    if len(train) <= period:
        return float("nan")
    d = np.abs(train[period:] - train[:-period])
    scale = float(d.mean())
    return scale if scale > 0 else float("nan")


def accuracy(y: np.ndarray, fc: pd.DataFrame, scale: float) -> dict[str, float]:
    yhat = fc["yhat"].to_numpy(float)
    err = np.abs(y - yhat)
    denom = np.abs(y) + np.abs(yhat)
    with np.errstate(invalid="ignore", divide="ignore"):
        # 0/0 (both zero) is a perfect forecast, not undefined.
        smape = np.where(denom == 0, 0.0, 200.0 * err / denom)
    inside = (y >= fc["yhat_lower"].to_numpy(float)) & (y <= fc["yhat_upper"].to_numpy(float))
    return {
        "mae": float(err.mean()),
        "mase": float(err.mean() / scale) if scale == scale else float("nan"),
        "smape": float(smape.mean()),
        "coverage": float(inside.mean()),
    }


@dataclass
class BacktestResult:
    folds: pd.DataFrame  # one row per (model, fold): metrics
    predictions: pd.DataFrame  # model, fold, ds, y, yhat, yhat_lower, yhat_upper
    plan: FoldPlan
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def summary(self) -> pd.DataFrame:
        """Mean metrics per model across folds (MASE averaged per fold, equal weights)."""
        return self.folds.groupby("model")[["mase", "smape", "mae", "coverage"]].mean().reset_index()

    @property
    def champion(self) -> str | None:
        s = self.summary.dropna(subset=["mase"])
        return None if s.empty else str(s.sort_values(["mase", "model"]).iloc[0]["model"])


def backtest(
    y: pd.Series, models: list[Forecaster], horizon: int = HORIZON, step: int = STEP, initial: int = INITIAL,
    max_folds: int = 8,
) -> BacktestResult:
    plan = plan_folds(len(y), horizon, step, initial, max_folds)
    values = y.to_numpy(float)
    rows, preds, errors = [], [], {}
    for fold, origin in enumerate(plan.origins):
        train = y.iloc[:origin]
        actual = values[origin : origin + horizon]
        scale = mase_scale(train.to_numpy(float))
        for m in models:
            try:
                fc = m.fit_predict(train, horizon)
            except Exception as exc:  # noqa: BLE001 — one broken model must not sink the others
                errors[m.name] = f"{type(exc).__name__}: {exc}"
                continue
            rows.append({"model": m.name, "fold": fold, "origin": y.index[origin], **accuracy(actual, fc, scale)})
            preds.append(fc.assign(model=m.name, fold=fold, y=actual))
    if not rows:
        warnings.warn(f"every model failed: {errors}")
    return BacktestResult(
        folds=pd.DataFrame(rows, columns=["model", "fold", "origin", "mae", "mase", "smape", "coverage"]),
        predictions=pd.concat(preds, ignore_index=True) if preds else pd.DataFrame(),
        plan=plan,
        errors=errors,
    )
