"""Churn settings in one place (the Dagster assets expose them as run config)."""
from __future__ import annotations

from dataclasses import dataclass


class TooLittleHistory(Exception):
    """Raised when the warehouse cannot support a temporal split; callers skip, not fail."""


@dataclass(frozen=True)
class ChurnConfig:
    # Label window H. 90 days ~ the 90th percentile of inter-purchase gaps (see README and
    # ml.churn.labels.inter_purchase_gaps): 9 of 10 repeat purchases come within 90 days of
    # the previous one, so 90 quiet days is strong evidence that a customer has left.
    horizon_days: int = 90
    # Population: at least one order in this many days before the cutoff.
    lookback_days: int = 365
    # Training cutoffs (month starts) before the calibration cutoff; more = more rows, slower.
    n_train_cutoffs: int = 6
    min_train_cutoffs: int = 2
    # A cutoff needs this much history before it for the features to mean something.
    warmup_days: int = 90
    # Cap on training rows (random sample) to bound run time on big shops.
    max_train_rows: int = 400_000
    # Risk bands on the calibrated probability: [0, low) low, [low, high) medium, [high, 1] high.
    band_low: float = 0.3
    band_high: float = 0.6
    # Gate.
    min_auc_gain: float = 0.02
    random_state: int = 42
    # OpenMP threads for HistGradientBoosting. 1 by default: on this shared 2-core machine
    # a second thread spin-waits against other jobs and made a 5k-row fit ~5x *slower*
    # (see BENCHMARKS.md); None = all cores, for a dedicated box.
    n_threads: int | None = 1
