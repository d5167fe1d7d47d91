"""Temporal training of the churn model and its baselines on one split (see labels.plan_cutoffs)."""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from ml.churn import evaluate
from ml.churn.config import ChurnConfig, TooLittleHistory
from ml.churn.feature_selection import drop_uninformative_features
from ml.churn.features import FEATURES, build_features, replace_inf, to_matrix
from ml.churn.labels import CutoffPlan, gap_summary, inter_purchase_gaps, labels, observed_range, plan_cutoffs

log = logging.getLogger(__name__)

RFM = ["recency_days", "frequency", "monetary"]
INPUT_TABLES = [
    "staging.stg_orders",
    "staging.stg_order_items",
    "staging.stg_products",
    "marts.dim_customers",
    "marts.fct_sessions",
]


@dataclass
class ChurnTrainResult:
    model: dict[str, Any]  # {"estimator", "channels", "features"} — what score.py needs
    plan: CutoffPlan
    metrics: dict[str, dict[str, float]]  # "candidate", "candidate_uncalibrated", baselines...
    baselines: list[str]
    gate: dict[str, Any]
    reliability: dict[str, pd.DataFrame]
    lift: dict[str, pd.DataFrame]
    rows: dict[str, int]
    gaps: dict[str, float]
    notes: list[str] = field(default_factory=list)

    @property
    def training_window(self) -> dict[str, Any]:
        return self.plan.as_dict()


def _check_split(name: str, df: pd.DataFrame) -> None:
    if df.empty or df["churned"].nunique() < 2:
        raise TooLittleHistory(f"{name} split has {len(df)} rows and {df['churned'].nunique() if len(df) else 0} class(es)")


def fit_candidate(train: pd.DataFrame, cal: pd.DataFrame, cfg: ChurnConfig) -> dict[str, Any]:
    """HistGradientBoosting on the training cutoffs, sigmoid-calibrated on the later slice.

    Sigmoid (Platt) rather than isotonic: it is monotonic, so calibration cannot change the
    ranking (ROC-AUC) and it is stable with a few thousand calibration rows.
    """
    channels = sorted(train["acquisition_channel"].unique().tolist())
    # e.g. a shop without events: every session feature is empty or 0
    features = drop_uninformative_features(train, FEATURES, log)
    if not features:
        raise TooLittleHistory("no churn feature varies across the training rows")
    hgb = HistGradientBoostingClassifier(
        learning_rate=0.06,
        max_iter=300,
        max_leaf_nodes=31,
        min_samples_leaf=40,
        l2_regularization=1.0,
        categorical_features="from_dtype",
        early_stopping=True,  # held-out 10% of the training rows picks the iteration count
        validation_fraction=0.1,
        n_iter_no_change=20,
        random_state=cfg.random_state,
    )
    with threadpool_limits(limits=cfg.n_threads, user_api="openmp"):
        hgb.fit(replace_inf(to_matrix(train, channels, features)), train["churned"].to_numpy())
    calibrated = CalibratedClassifierCV(FrozenEstimator(hgb), method="sigmoid")
    calibrated.fit(replace_inf(to_matrix(cal, channels, features)), cal["churned"].to_numpy())
    return {"estimator": calibrated, "uncalibrated": hgb, "channels": channels, "features": features}


def predict(model: dict[str, Any], df: pd.DataFrame, n_threads: int | None = 1) -> np.ndarray:
    X = replace_inf(to_matrix(df, model["channels"], model.get("features")))
    with threadpool_limits(limits=n_threads, user_api="openmp"):
        return model["estimator"].predict_proba(X)[:, 1]


def fit_rfm_logistic(train: pd.DataFrame, cfg: ChurnConfig):
    lr = make_pipeline(
        FunctionTransformer(np.log1p),  # RFM values are heavy-tailed
        StandardScaler(),
        LogisticRegression(max_iter=1000, random_state=cfg.random_state),
    )
    lr.fit(train[RFM].fillna(0).clip(lower=0).to_numpy(), train["churned"].to_numpy())
    return lr


def bgnbd_churn_probability(test: pd.DataFrame, cfg: ChurnConfig, max_fit_rows: int = 20_000) -> np.ndarray | None:
    """1 - P(alive) from a BG/NBD model fitted on the test cutoff's pre-T purchase history.

    BG/NBD is unsupervised (it uses no labels), so fitting it on data before the test cutoff
    is legitimate. Returns None when the optional ``lifetimes`` package is missing.
    """
    try:
        from lifetimes import BetaGeoFitter
    except ImportError:
        return None
    frequency = (test["order_days"] - 1).clip(lower=0).to_numpy()
    # Repeat purchases are counted on distinct days; recency (first -> last purchase) must be
    # 0 for customers without a repeat day. Time in weeks: the optimiser converges far more
    # reliably than with day-scale values in the hundreds.
    T = test["first_order_age_days"].to_numpy() / 7.0
    recency = np.where(frequency > 0, np.clip(T - test["recency_days"].to_numpy() / 7.0, 0, None), 0.0)
    rng = np.random.default_rng(cfg.random_state)
    idx = rng.choice(len(test), size=min(len(test), max_fit_rows), replace=False)
    last_error: Exception | None = None
    # The MLE sometimes stops on "precision loss"; a stronger L2 penalty usually fixes it.
    for penalizer in (0.001, 0.01, 0.1):
        bgf = BetaGeoFitter(penalizer_coef=penalizer)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                bgf.fit(frequency[idx], recency[idx], T[idx])
                p_alive = bgf.conditional_probability_alive(frequency, recency, T)
            break
        except Exception as exc:  # noqa: BLE001 — lifetimes raises its own ConvergenceError
            last_error = exc
    else:
        raise RuntimeError(f"BG/NBD did not converge: {last_error}")
    return 1.0 - np.asarray(p_alive, float)


def load_dataset(con: duckdb.DuckDBPyConnection, plan: CutoffPlan, cfg: ChurnConfig) -> pd.DataFrame:
    cutoffs = plan.train + [plan.calibration, plan.test]
    lab = labels(con, cutoffs, cfg)
    feats = build_features(con, lab[["cutoff", "customer_id"]])
    df = feats.merge(lab, on=["cutoff", "customer_id"], how="inner", validate="one_to_one")
    df["cutoff"] = pd.to_datetime(df["cutoff"]).dt.date
    return df


def train_churn(con: duckdb.DuckDBPyConnection, cfg: ChurnConfig = ChurnConfig()) -> ChurnTrainResult:
    first, observed_end = observed_range(con)
    plan = plan_cutoffs(first, observed_end, cfg)
    df = load_dataset(con, plan, cfg)
    train = df[df["cutoff"].isin(plan.train)]
    cal = df[df["cutoff"] == plan.calibration]
    test = df[df["cutoff"] == plan.test].reset_index(drop=True)
    for name, part in (("training", train), ("calibration", cal), ("test", test)):
        _check_split(name, part)
    notes = []
    if len(train) > cfg.max_train_rows:
        train = train.sample(cfg.max_train_rows, random_state=cfg.random_state)
        notes.append(f"training rows sampled down to {cfg.max_train_rows}")

    model = fit_candidate(train, cal, cfg)
    unused = [f for f in FEATURES if f not in model["features"]]
    if unused:
        notes.append(f"features without information dropped before fitting: {', '.join(unused)}")
    y = test["churned"].to_numpy()
    p = predict(model, test)
    p_raw = model["uncalibrated"].predict_proba(
        replace_inf(to_matrix(test, model["channels"], model["features"])))[:, 1]

    baseline_scores: dict[str, tuple[np.ndarray, bool]] = {
        "days_since_last_order": (test["recency_days"].to_numpy(), False),
        "logistic_rfm": (fit_rfm_logistic(train, cfg).predict_proba(test[RFM].fillna(0).clip(lower=0).to_numpy())[:, 1], True),
    }
    try:
        bg = bgnbd_churn_probability(test, cfg)
    except RuntimeError as exc:
        bg = None
        notes.append(f"BG/NBD baseline skipped: {exc}".splitlines()[0])
    if bg is not None:
        baseline_scores["bgnbd_p_alive"] = (bg, True)
    elif not any(n.startswith("BG/NBD") for n in notes):
        notes.append("BG/NBD baseline skipped: the lifetimes package is not installed")

    metrics = {
        "candidate": evaluate.binary_metrics(y, p),
        "candidate_uncalibrated": evaluate.binary_metrics(y, p_raw),
    }
    for name, (s, is_prob) in baseline_scores.items():
        metrics[name] = evaluate.binary_metrics(y, s, is_prob)
    decision = evaluate.gate(metrics["candidate"], {k: metrics[k] for k in baseline_scores}, cfg)
    reliability = {"hgb_calibrated": evaluate.reliability(y, p), "hgb_uncalibrated": evaluate.reliability(y, p_raw)}
    if "logistic_rfm" in baseline_scores:
        reliability["logistic_rfm"] = evaluate.reliability(y, baseline_scores["logistic_rfm"][0])
    lift = {"hgb_calibrated": evaluate.lift_by_decile(y, p)}
    for name, (s, _) in baseline_scores.items():
        lift[name] = evaluate.lift_by_decile(y, s)

    return ChurnTrainResult(
        model={k: v for k, v in model.items() if k != "uncalibrated"},
        plan=plan,
        metrics=metrics,
        baselines=list(baseline_scores),
        gate=decision,
        reliability=reliability,
        lift=lift,
        rows={"train": int(len(train)), "calibration": int(len(cal)), "test": int(len(test))},
        gaps=gap_summary(inter_purchase_gaps(con)),
        notes=notes,
    )
