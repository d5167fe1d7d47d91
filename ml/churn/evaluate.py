"""Metrics, reliability and lift tables, and the promotion gate."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from ml.churn.config import ChurnConfig


def top_decile_lift(y: np.ndarray, score: np.ndarray) -> float:
    """Churn rate among the 10% highest scores / overall churn rate."""
    y = np.asarray(y, float)
    k = max(1, int(np.ceil(0.1 * len(y))))
    # Stable sort on -score: ties keep input order, so the figure is deterministic.
    top = np.argsort(-np.asarray(score, float), kind="stable")[:k]
    base = y.mean()
    return float(y[top].mean() / base) if base > 0 else float("nan")


def binary_metrics(y: np.ndarray, score: np.ndarray, is_probability: bool = True) -> dict[str, float]:
    y = np.asarray(y, int)
    score = np.asarray(score, float)
    out = {
        "roc_auc": float(roc_auc_score(y, score)),
        "pr_auc": float(average_precision_score(y, score)),
        "top_decile_lift": top_decile_lift(y, score),
        "n": int(len(y)),
        "base_rate": float(y.mean()),
    }
    # Brier only means something for probabilities (days-since-last-order is a rank score).
    out["brier"] = float(brier_score_loss(y, np.clip(score, 0, 1))) if is_probability else float("nan")
    return out


def reliability(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Quantile-binned reliability curve (equal-count bins keep every point meaningful)."""
    frac_pos, mean_pred = calibration_curve(y, p, n_bins=n_bins, strategy="quantile")
    return pd.DataFrame({"mean_predicted": mean_pred, "fraction_positive": frac_pos})


def lift_by_decile(y: np.ndarray, score: np.ndarray) -> pd.DataFrame:
    y = np.asarray(y, float)
    order = np.argsort(-np.asarray(score, float), kind="stable")
    deciles = np.array_split(order, 10)
    base = y.mean()
    return pd.DataFrame(
        {
            "decile": np.arange(1, 11),
            "churn_rate": [y[d].mean() for d in deciles],
            "lift": [y[d].mean() / base if base > 0 else np.nan for d in deciles],
        }
    )


def gate(candidate: dict[str, float], baselines: dict[str, dict[str, float]], cfg: ChurnConfig) -> dict[str, Any]:
    """Promotion rule (all must hold, all measured on the same test cutoff):

    1. ROC-AUC >= best baseline ROC-AUC + ``min_auc_gain`` (0.02);
    2. PR-AUC >= the best baseline PR-AUC ("not worse");
    3. Brier < the Brier of always predicting the test base rate p, i.e. p(1-p).
    """
    if not baselines:
        return {"passed": False, "reasons": ["no baseline could be evaluated"], "checks": {}}
    best_auc_name = max(baselines, key=lambda k: baselines[k]["roc_auc"])
    best_auc = baselines[best_auc_name]["roc_auc"]
    best_pr_name = max(baselines, key=lambda k: baselines[k]["pr_auc"])
    best_pr = baselines[best_pr_name]["pr_auc"]
    p = candidate["base_rate"]
    base_brier = p * (1 - p)
    checks = {
        "roc_auc": {
            "passed": candidate["roc_auc"] >= best_auc + cfg.min_auc_gain,
            "value": candidate["roc_auc"],
            "threshold": best_auc + cfg.min_auc_gain,
            "best_baseline": best_auc_name,
        },
        "pr_auc": {
            "passed": candidate["pr_auc"] >= best_pr,
            "value": candidate["pr_auc"],
            "threshold": best_pr,
            "best_baseline": best_pr_name,
        },
        "brier": {"passed": candidate["brier"] < base_brier, "value": candidate["brier"], "threshold": base_brier},
    }
    reasons = []
    if not checks["roc_auc"]["passed"]:
        reasons.append(
            f"ROC-AUC {candidate['roc_auc']:.4f} < {best_auc_name} {best_auc:.4f} + {cfg.min_auc_gain}"
        )
    if not checks["pr_auc"]["passed"]:
        reasons.append(f"PR-AUC {candidate['pr_auc']:.4f} < {best_pr_name} {best_pr:.4f}")
    if not checks["brier"]["passed"]:
        reasons.append(f"Brier {candidate['brier']:.4f} >= base-rate Brier {base_brier:.4f}")
    passed = not reasons
    return {
        "passed": passed,
        "reasons": reasons or [
            f"ROC-AUC {candidate['roc_auc']:.4f} beats {best_auc_name} {best_auc:.4f} by "
            f"{candidate['roc_auc'] - best_auc:.4f}; PR-AUC {candidate['pr_auc']:.4f} >= {best_pr:.4f}; "
            f"Brier {candidate['brier']:.4f} < {base_brier:.4f}"
        ],
        "checks": checks,
    }
