"""Comparing churn scores with the simulator's latent churn state (simulated data only).

The simulator writes ``ground_truth.json``; we accept the shapes it is likely to take and
fail loudly on anything else rather than guessing:
* ``{"customers": {customer_id: {"churned": bool, ...}}}``
* ``{"customers": [{"customer_id": ..., "churned": bool}, ...]}``
* ``{customer_id: {"churned": bool}}`` or ``{customer_id: bool}`` at the top level.
The flag may also be called ``is_churned`` or given as ``state``/``churn_state`` in
{"churned", "active"/"alive"}.

The simulator's format (``nightjar-simulator/1``) is the first shape, where ``churned``
means "stopped by the end of the simulated period" and ``planned_churn_date`` (if not null)
is the pre-drawn churn day within the following 90 days. A score made at the end of the
period predicts "no order in the next H days", so besides the latent state we also compare
with ``churned or planned_churn_date is set`` (``latent_churned_within_90d``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

_FLAG_KEYS = ("churned", "is_churned", "latent_churned")
_STATE_KEYS = ("state", "churn_state", "latent_state", "status")


def _flag(rec: Any) -> bool | None:
    if isinstance(rec, bool):
        return rec
    if not isinstance(rec, dict):
        return None
    for k in _FLAG_KEYS:
        if k in rec and rec[k] is not None:
            return bool(rec[k])
    for k in _STATE_KEYS:
        if isinstance(rec.get(k), str):
            return rec[k].lower() in ("churned", "churn", "lapsed", "dead", "inactive")
    return None


def load_latent_churn(path: Path) -> pd.Series:
    """customer_id -> latent churned (bool)."""
    data = json.loads(Path(path).read_text())
    customers = data.get("customers", data) if isinstance(data, dict) else data
    pairs: list[tuple[str, bool | None]] = []
    if isinstance(customers, dict):
        pairs = [(str(k), _flag(v)) for k, v in customers.items()]
    elif isinstance(customers, list):
        pairs = [(str(r.get("customer_id")), _flag(r)) for r in customers if isinstance(r, dict)]
    s = pd.Series(dict((k, v) for k, v in pairs if v is not None), dtype="boolean")
    if s.empty:
        raise ValueError(f"{path}: no per-customer churn state found (unknown ground-truth format)")
    return s.astype(bool)


def load_planned_churn(path: Path) -> pd.Series | None:
    """customer_id -> churned now or planned to churn within 90 days; None if the file has no plan."""
    data = json.loads(Path(path).read_text())
    customers = data.get("customers") if isinstance(data, dict) else None
    if not isinstance(customers, dict) or not any(
        isinstance(v, dict) and "planned_churn_date" in v for v in customers.values()
    ):
        return None
    return pd.Series(
        {str(k): bool(v.get("churned")) or v.get("planned_churn_date") is not None for k, v in customers.items() if isinstance(v, dict)},
        dtype=bool,
    )


def truth_metrics(scores: pd.DataFrame, truth: pd.Series, planned: pd.Series | None = None) -> dict[str, Any]:
    """ROC-AUC of scores against the latent state, and the latent churn share per band."""
    joined = scores.merge(truth.rename("latent_churned"), left_on="customer_id", right_index=True, how="inner")
    if planned is not None:
        joined = joined.merge(planned.rename("within"), left_on="customer_id", right_index=True, how="left")
    out: dict[str, Any] = {"n_matched": int(len(joined)), "latent_churn_rate": float(joined["latent_churned"].mean()) if len(joined) else float("nan")}
    if joined["latent_churned"].nunique() == 2:
        out["latent_roc_auc"] = float(roc_auc_score(joined["latent_churned"], joined["score"]))
    out["latent_churn_rate_by_band"] = {
        b: float(g["latent_churned"].mean()) for b, g in joined.groupby("band", observed=True)
    }
    out["mean_score"] = float(np.mean(joined["score"])) if len(joined) else float("nan")
    if planned is not None and joined["within"].notna().all() and joined["within"].nunique() == 2:
        out["latent_churned_within_90d_roc_auc"] = float(roc_auc_score(joined["within"].astype(bool), joined["score"]))
        out["latent_churned_within_90d_rate"] = float(joined["within"].astype(bool).mean())
    return out
