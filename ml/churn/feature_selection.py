"""Drop feature columns that carry no information before a model is fitted.

A shop without events has every session feature empty (NaN) or constant (0), and one
without acquisition data has a single channel. Such a column cannot split anything;
an all-empty one even crashes HistGradientBoosting's binning ("window shape cannot be
larger than input array shape"). The columns are judged on the training rows, logged by
name, and the model keeps the list of what it was fitted on, so scoring uses the same.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


def uninformative_features(df: pd.DataFrame, columns: Sequence[str]) -> dict[str, str]:
    """``{column: "all empty" | "constant"}`` for the columns of ``df`` that cannot inform a
    model: no value at all (NaN and ±inf count as empty), or one value on every row (a
    column that is sometimes missing keeps its missingness as information and stays)."""
    out: dict[str, str] = {}
    for col in columns:
        values = df[col]
        if pd.api.types.is_numeric_dtype(values):
            values = values.replace([np.inf, -np.inf], np.nan)
        if values.isna().all():
            out[col] = "all empty"
        elif values.nunique(dropna=False) <= 1:
            out[col] = "constant"
    return out


def drop_uninformative_features(df: pd.DataFrame, columns: Sequence[str],
                                logger: logging.Logger | None = None) -> list[str]:
    """The ``columns`` worth fitting on (order kept); logs the dropped ones with why."""
    dropped = uninformative_features(df, columns)
    if dropped:
        (logger or log).warning(
            "features dropped before fitting (no information in %d training rows): %s",
            len(df), ", ".join(f"{c} ({why})" for c, why in dropped.items()),
        )
    return [c for c in columns if c not in dropped]
