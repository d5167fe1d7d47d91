"""Rolling-origin backtests, honest champion selection and conformal interval calibration.

Folds come in two roles, in time order:

* ``select`` folds (the earlier half) choose the champion (lowest mean MASE) and calibrate
  each model's interval width;
* ``holdout`` folds (the later half) report the champion's accuracy and the coverage of
  its calibrated interval. Their forecast windows start after every selection window has
  ended, so no actual used to choose or calibrate is scored again.

Each fold trains on everything before its origin and predicts the next ``horizon`` days.
Holdout origins step back ``step`` days from the end; selection origins step back from
one horizon before the first holdout origin. The first fold keeps at least ``initial``
days of training data (1 year when the history allows, so yearly seasonality is
learnable); with less history the initial window shrinks and then the fold count does.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.forecast.models import LEVEL, Forecaster

HORIZON = 28
STEP = 7
INITIAL = 365
MIN_INITIAL = 56  # 8 weeks: the least that shows a weekly pattern more than once
SELECT, HOLDOUT = "select", "holdout"


class SeriesTooShort(Exception):
    pass


@dataclass(frozen=True)
class FoldPlan:
    origins: list[int]  # index of the first forecast day in the series, in time order
    roles: list[str]  # SELECT or HOLDOUT per origin
    initial: int
    warning: str | None = None

    def folds(self, role: str) -> list[int]:
        return [i for i, r in enumerate(self.roles) if r == role]


def _origins(n: int, horizon: int, step: int, n_select: int, n_holdout: int) -> tuple[list[int], list[int]]:
    last = n - horizon
    holdout = [last - step * k for k in range(n_holdout)]
    first_select = min(holdout) - horizon  # its window ends where the first holdout window starts
    select = [first_select - step * k for k in range(n_select)]
    return sorted(select), sorted(holdout)


def plan_folds(
    n: int, horizon: int = HORIZON, step: int = STEP, initial: int = INITIAL, max_folds: int = 8,
    min_initial: int = MIN_INITIAL,
) -> FoldPlan:
    """Half the folds (rounded up) select, half hold out; at least one of each."""
    if max_folds < 2:
        raise ValueError("a backtest needs at least 2 folds: one to select on, one to hold out")
    n_holdout = max_folds // 2
    n_select = max_folds - n_holdout
    warning = None
    select, holdout = _origins(n, horizon, step, n_select, n_holdout)
    if select[0] < initial:
        select1, _ = _origins(n, horizon, step, 1, 1)
        if select1[0] < min_initial:
            raise SeriesTooShort(f"{n} days of history; a backtest needs at least {min_initial + 2 * horizon}")
        if n - 2 * horizon < initial:
            warning = f"only {n} days of history: initial training window shortened from {initial} to {min_initial} days"
            initial = min_initial
        # Fewer folds rather than a training window shorter than `initial`.
        while select[0] < initial:
            if n_select > 1 and n_select >= n_holdout:
                n_select -= 1
            else:
                n_holdout -= 1
            select, holdout = _origins(n, horizon, step, n_select, n_holdout)
    return FoldPlan(origins=select + holdout, roles=[SELECT] * len(select) + [HOLDOUT] * len(holdout),
                    initial=initial, warning=warning)


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


# --- conformal calibration --------------------------------------------------------------
# Locally scaled split conformal: a residual is measured in units of the series' recent
# volatility (mean absolute weekly difference over the last 4 weeks of training), so one
# factor per series and model carries over from older folds to newer ones even when the
# shop grows or shrinks. The models' own intervals are kept only for comparison: on real
# demand they covered 0.46-1.00 of the holdout actuals for a nominal 0.80.
LOCAL_WINDOW = 28


def local_scale(train: np.ndarray, window: int = LOCAL_WINDOW, period: int = 7) -> float:
    """Mean |y(t) - y(t-7)| over the last ``window`` days; the whole history's if those are flat."""
    recent = train[-(window + period):]
    for part in (recent, train):
        if len(part) > period:
            d = float(np.abs(part[period:] - part[:-period]).mean())
            if d > 0:
                return d
    return 1.0  # a flat history: residuals are then measured in the series' own units


def conformity_scores(y: np.ndarray, fc: pd.DataFrame, unit: float) -> np.ndarray:
    return np.abs(y - fc["yhat"].to_numpy(float)) / unit


def conformal_scale(scores: np.ndarray, level: float = LEVEL) -> float:
    """The ⌈(n+1)·level⌉-th smallest score (split-conformal quantile); nan without scores."""
    s = np.sort(scores[np.isfinite(scores)])
    if len(s) == 0:
        return float("nan")
    k = min(math.ceil((len(s) + 1) * level), len(s))
    return float(s[k - 1])


def scale_interval(fc: pd.DataFrame, factor: float, unit: float) -> pd.DataFrame:
    """``fc`` with the interval yhat ± factor·unit (clamped at 0); unchanged if ``factor`` is nan."""
    if not factor == factor:
        return fc
    out = fc.copy()
    yhat = fc["yhat"].to_numpy(float)
    out["yhat_lower"] = np.clip(yhat - factor * unit, 0, None)
    out["yhat_upper"] = yhat + factor * unit
    return out


@dataclass
class BacktestResult:
    folds: pd.DataFrame  # one row per (model, fold): role, metrics, raw and calibrated coverage
    predictions: pd.DataFrame  # model, fold, role, ds, y, yhat, yhat_lower, yhat_upper (calibrated), raw bounds
    plan: FoldPlan
    scales: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> {"select": c, "all": c}
    errors: dict[str, str] = field(default_factory=dict)

    def _mean(self, role: str) -> pd.DataFrame:
        f = self.folds[self.folds["role"] == role]
        return f.groupby("model")[["mase", "smape", "mae", "coverage", "coverage_raw"]].mean()

    @property
    def summary(self) -> pd.DataFrame:
        """Per model: holdout means (MASE per fold, equal weights) and the selection-fold MASE."""
        hold = self._mean(HOLDOUT)
        sel = self._mean(SELECT)["mase"].rename("select_mase")
        return hold.join(sel, how="outer").reset_index()

    @property
    def champion(self) -> str | None:
        """Lowest mean MASE on the selection folds; holdout folds play no part."""
        sel = self._mean(SELECT)["mase"].dropna()
        if sel.empty:
            return None
        return str(sel.reset_index().sort_values(["mase", "model"]).iloc[0]["model"])


def backtest(
    y: pd.Series, models: list[Forecaster], horizon: int = HORIZON, step: int = STEP, initial: int = INITIAL,
    max_folds: int = 8, level: float = LEVEL,
) -> BacktestResult:
    plan = plan_folds(len(y), horizon, step, initial, max_folds)
    values = y.to_numpy(float)
    raw: list[tuple[str, int, pd.DataFrame, np.ndarray, float]] = []
    units = [local_scale(values[:origin]) for origin in plan.origins]
    errors: dict[str, str] = {}
    for fold, origin in enumerate(plan.origins):
        train = y.iloc[:origin]
        actual = values[origin : origin + horizon]
        scale = mase_scale(train.to_numpy(float))
        for m in models:
            if m.name in errors:
                continue
            try:
                fc = m.fit_predict(train, horizon)
            except Exception as exc:  # noqa: BLE001 — one broken model must not sink the others
                errors[m.name] = f"{type(exc).__name__}: {exc}"
                continue
            raw.append((m.name, fold, fc, actual, scale))
    # A model that failed on some fold is dropped whole: a champion must have every fold.
    raw = [r for r in raw if r[0] not in errors]
    if not raw:
        warnings.warn(f"every model failed: {errors}")

    scales: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r[0] for r in raw):
        mine = [r for r in raw if r[0] == name]
        sel = [conformity_scores(a, fc, units[f]) for _, f, fc, a, _ in mine if plan.roles[f] == SELECT]
        every = [conformity_scores(a, fc, units[f]) for _, f, fc, a, _ in mine]
        scales[name] = {
            SELECT: conformal_scale(np.concatenate(sel), level) if sel else float("nan"),
            "all": conformal_scale(np.concatenate(every), level) if every else float("nan"),
        }

    rows, preds = [], []
    for name, fold, fc, actual, scale in raw:
        role = plan.roles[fold]
        # Holdout folds use the factor fitted on selection folds only; selection folds report
        # the same factor in-sample.
        cal = scale_interval(fc, scales[name][SELECT], units[fold])
        m_raw = accuracy(actual, fc, scale)
        m_cal = accuracy(actual, cal, scale)
        rows.append({
            "model": name, "fold": fold, "role": role, "origin": y.index[plan.origins[fold]],
            "mae": m_raw["mae"], "mase": m_raw["mase"], "smape": m_raw["smape"],
            "coverage": m_cal["coverage"], "coverage_raw": m_raw["coverage"],
        })
        preds.append(cal.assign(
            model=name, fold=fold, role=role, y=actual,
            yhat_lower_raw=fc["yhat_lower"].to_numpy(float), yhat_upper_raw=fc["yhat_upper"].to_numpy(float),
        ))
    return BacktestResult(
        folds=pd.DataFrame(rows, columns=["model", "fold", "role", "origin", "mae", "mase", "smape", "coverage", "coverage_raw"]),
        predictions=pd.concat(preds, ignore_index=True) if preds else pd.DataFrame(),
        plan=plan,
        scales=scales,
        errors=errors,
    )
