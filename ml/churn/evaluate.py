"""Metrics, reliability and lift tables, and the promotion gate over several temporal cutoffs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from ml.churn.config import ChurnConfig


def _top_decile(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, int]:
    k = max(1, int(np.ceil(0.1 * len(y))))
    # Stable sort on -score: ties keep input order, so the figure is deterministic.
    return np.argsort(-np.asarray(score, float), kind="stable")[:k], k


def top_decile_lift(y: np.ndarray, score: np.ndarray) -> float:
    """Churn rate among the 10% highest scores / overall churn rate (capped at 1 / base rate)."""
    y = np.asarray(y, float)
    top, _ = _top_decile(y, score)
    base = y.mean()
    return float(y[top].mean() / base) if base > 0 else float("nan")


def top_decile_vs_oracle(y: np.ndarray, score: np.ndarray) -> float:
    """Churners in the top decile / churners an oracle would put there (min(k, positives)).

    Lift saturates at 1 / base rate (1.7 at a 59 % churn rate), so two good models look
    alike; this ratio is 1 for a perfect ranking and the base rate for a random one at any
    base rate.
    """
    y = np.asarray(y, float)
    top, k = _top_decile(y, score)
    best = min(k, y.sum())
    return float(y[top].sum() / best) if best > 0 else float("nan")


def binary_metrics(y: np.ndarray, score: np.ndarray, is_probability: bool = True) -> dict[str, float]:
    y = np.asarray(y, int)
    score = np.asarray(score, float)
    out = {
        "roc_auc": float(roc_auc_score(y, score)),
        "pr_auc": float(average_precision_score(y, score)),
        "top_decile_lift": top_decile_lift(y, score),
        "top_decile_vs_oracle": top_decile_vs_oracle(y, score),
        "n": int(len(y)),
        "base_rate": float(y.mean()),
    }
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


@dataclass
class FoldScores:
    """One temporal evaluation cutoff: labels, customers and every model's probabilities."""

    cutoff: str
    y: np.ndarray
    customer_id: np.ndarray
    scores: dict[str, np.ndarray]


class _RankedAUC:
    """ROC-AUC under arbitrary row weights, with the sort done once (for the bootstrap)."""

    def __init__(self, y: np.ndarray, score: np.ndarray):
        _, self.group = np.unique(np.asarray(score, float), return_inverse=True)  # tied scores share a group
        self.y = np.asarray(y, float)
        self.n_groups = int(self.group.max()) + 1 if len(self.group) else 0

    def __call__(self, w: np.ndarray) -> float:
        pos = np.bincount(self.group, weights=w * self.y, minlength=self.n_groups)
        neg = np.bincount(self.group, weights=w * (1 - self.y), minlength=self.n_groups)
        below = np.cumsum(neg) - neg  # weighted negatives with a strictly lower score
        denom = pos.sum() * neg.sum()
        return float(np.sum(pos * (below + 0.5 * neg)) / denom) if denom > 0 else float("nan")


def bootstrap_auc_difference(
    folds: list[FoldScores], model: str, reference: str, n_boot: int, seed: int, level: float = 0.90
) -> dict[str, float]:
    """Interval of mean-over-cutoffs ROC-AUC(model) − ROC-AUC(reference), customers resampled.

    A customer appears at several cutoffs; resampling customers (not rows) keeps their rows
    together, so the interval reflects how many *customers* the evidence rests on.
    """
    customers = np.unique(np.concatenate([f.customer_id for f in folds]))
    idx = [np.searchsorted(customers, f.customer_id) for f in folds]
    aucs = [(_RankedAUC(f.y, f.scores[model]), _RankedAUC(f.y, f.scores[reference])) for f in folds]
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for b in range(n_boot):
        weight = np.bincount(rng.integers(0, len(customers), len(customers)), minlength=len(customers)).astype(float)
        diffs[b] = np.nanmean([m(weight[i]) - r(weight[i]) for (m, r), i in zip(aucs, idx)])
    tail = (1 - level) / 2
    lo, hi = np.nanquantile(diffs, [tail, 1 - tail])
    return {"low": float(lo), "high": float(hi), "level": level, "n_boot": n_boot, "n_customers": int(len(customers))}


def mean_metrics(folds: list[FoldScores], prob_models: set[str]) -> dict[str, dict[str, float]]:
    """Each model's metrics averaged over the cutoffs (plus the per-cutoff ROC-AUCs)."""
    out: dict[str, dict[str, float]] = {}
    for name in folds[0].scores:
        per = [binary_metrics(f.y, f.scores[name], name in prob_models) for f in folds]
        out[name] = {k: float(np.mean([m[k] for m in per])) for k in per[0]}
        out[name]["n"] = int(sum(m["n"] for m in per))
        out[name]["roc_auc_by_cutoff"] = {f.cutoff: m["roc_auc"] for f, m in zip(folds, per)}
    return out


def gate(
    folds: list[FoldScores], baselines: list[str], prob_models: set[str], cfg: ChurnConfig
) -> dict[str, Any]:
    """Promotion rule over ``len(folds)`` (>= ``cfg.min_eval_cutoffs``) temporal cutoffs; all must hold:

    1. mean ROC-AUC >= the best baseline's mean ROC-AUC + ``min_auc_gain`` (0.02);
    2. the bootstrap 90 % interval of that ROC-AUC difference (customers resampled) lies above 0;
    3. mean Brier <= the best (lowest) mean Brier of the probability baselines.

    Whatever the verdict, it names the champion: the candidate when it passed, otherwise the
    baseline with the best mean ROC-AUC, provided its Brier beats always predicting the base
    rate (else there is no champion and nothing is published).
    """
    metrics = mean_metrics(folds, prob_models)
    if not baselines:
        return {"passed": False, "reasons": ["no baseline could be evaluated"], "checks": {}, "metrics": metrics,
                "champion": None}
    cand = metrics["candidate"]
    best = max(baselines, key=lambda k: (metrics[k]["roc_auc"], -np.nan_to_num(metrics[k]["brier"], nan=1.0)))
    best_auc = metrics[best]["roc_auc"]
    interval = bootstrap_auc_difference(folds, "candidate", best, cfg.n_bootstrap, cfg.random_state)
    calibrated = [b for b in baselines if b in prob_models]
    best_brier_name = min(calibrated, key=lambda k: metrics[k]["brier"]) if calibrated else None
    best_brier = metrics[best_brier_name]["brier"] if best_brier_name else float("inf")
    base = float(np.mean([f.y.mean() for f in folds]))
    checks = {
        "roc_auc": {"passed": cand["roc_auc"] >= best_auc + cfg.min_auc_gain, "value": cand["roc_auc"],
                    "threshold": best_auc + cfg.min_auc_gain, "best_baseline": best},
        "auc_difference_interval": {"passed": interval["low"] > 0, "value": cand["roc_auc"] - best_auc, **interval},
        "brier": {"passed": cand["brier"] <= best_brier, "value": cand["brier"], "threshold": best_brier,
                  "best_baseline": best_brier_name},
    }
    reasons = []
    if not checks["roc_auc"]["passed"]:
        reasons.append(f"mean ROC-AUC {cand['roc_auc']:.4f} < {best} {best_auc:.4f} + {cfg.min_auc_gain}")
    if not checks["auc_difference_interval"]["passed"]:
        reasons.append(
            f"{interval['level']:.0%} interval of the ROC-AUC gain over {best} "
            f"[{interval['low']:+.4f}, {interval['high']:+.4f}] does not lie above 0"
        )
    if not checks["brier"]["passed"]:
        reasons.append(f"mean Brier {cand['brier']:.4f} > {best_brier_name} {best_brier:.4f}")
    passed = not reasons
    if passed:
        champion = "candidate"
        reasons = [
            f"mean ROC-AUC over {len(folds)} cutoffs {cand['roc_auc']:.4f} beats {best} {best_auc:.4f} by "
            f"{cand['roc_auc'] - best_auc:.4f} ({interval['level']:.0%} interval [{interval['low']:+.4f}, "
            f"{interval['high']:+.4f}]); Brier {cand['brier']:.4f} <= {best_brier:.4f}"
        ]
    else:
        by_auc = sorted(calibrated, key=lambda k: -metrics[k]["roc_auc"])
        champion = next((b for b in by_auc if metrics[b]["brier"] < base * (1 - base)), None)
    return {
        "passed": passed,
        "reasons": reasons,
        "checks": checks,
        "champion": champion,
        "best_baseline": best,
        "cutoffs": [f.cutoff for f in folds],
        "metrics": metrics,
    }
