"""Churn settings in one place (the Dagster assets expose them as run config)."""
from __future__ import annotations

from dataclasses import dataclass


class TooLittleHistory(Exception):
    """Raised when the warehouse cannot support a temporal split; callers skip, not fail."""


@dataclass(frozen=True)
class ChurnConfig:
    # Label window H in days. None = derived from the shop's inter-purchase gaps at training
    # (labels.choose_horizon: the 90th percentile rounded up to 30 days, within
    # [min_horizon_days, max_horizon_days]); a set value is checked against the same percentile.
    horizon_days: int | None = None
    min_horizon_days: int = 30
    max_horizon_days: int = 365
    # False accepts a set H below the gap p90 (to reproduce figures at a given H, e.g. CDNOW at 90).
    check_horizon: bool = True
    # Population: at least one order in this many days before the cutoff.
    lookback_days: int = 365
    # Training cutoffs (month starts) before the calibration cutoff; more = more rows, slower.
    n_train_cutoffs: int = 6
    min_train_cutoffs: int = 2
    # A cutoff needs this much history before it for the features to mean something.
    warmup_days: int = 90
    # Cap on training rows (random sample) to bound run time on big shops.
    max_train_rows: int = 400_000
    # Customers the BG/NBD likelihood is maximised on (uniform sample above it).
    max_bgnbd_fit_rows: int = 20_000
    # Risk bands on the calibrated probability: [0, low) low, [low, high) medium, [high, 1] high.
    band_low: float = 0.3
    band_high: float = 0.6
    # Gate: mean over the latest `n_eval_cutoffs` fully observed month starts (at least
    # `min_eval_cutoffs`), a bootstrap interval of the ROC-AUC gain with `n_bootstrap`
    # customer resamples (200 keeps the gate under a second; the 5 % tails move by ~0.002).
    min_auc_gain: float = 0.02
    n_eval_cutoffs: int = 3
    min_eval_cutoffs: int = 3
    n_bootstrap: int = 200
    # Session features can be switched off (evaluation without the behaviour the simulator
    # makes very telling; shops without events lose nothing else).
    use_session_features: bool = True
    random_state: int = 42
    # OpenMP threads for HistGradientBoosting. 1 by default: on this shared 2-core machine
    # a second thread spin-waits against other jobs and made a 5k-row fit ~5x *slower*
    # (see BENCHMARKS.md); None = all cores, for a dedicated box.
    n_threads: int | None = 1
