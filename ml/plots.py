"""Matplotlib charts (Agg backend, PNG) for model metadata in the Dagster UI."""
from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: assets run without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=72)
    plt.close(fig)
    return path


def png_markdown(path: Path, title: str = "") -> str:
    """Markdown with the PNG inlined as base64, so the Dagster UI shows it without a file server."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f"![{title}](data:image/png;base64,{data})"


def reliability_plot(curves: dict[str, pd.DataFrame], path: Path) -> Path:
    """curves: model name -> DataFrame(mean_predicted, fraction_positive)."""
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0, 1], [0, 1], "k:", label="perfect")
    for name, c in curves.items():
        ax.plot(c["mean_predicted"], c["fraction_positive"], "o-", label=name, ms=3)
    ax.set_xlabel("mean predicted churn probability")
    ax.set_ylabel("observed churn rate")
    ax.set_title("Reliability (test cutoff)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def lift_plot(lifts: dict[str, pd.DataFrame], path: Path) -> Path:
    """lifts: model name -> DataFrame(decile 1..10, lift)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    width = 0.8 / max(len(lifts), 1)
    for i, (name, d) in enumerate(lifts.items()):
        ax.bar(d["decile"] + (i - len(lifts) / 2) * width, d["lift"], width=width, label=name)
    ax.axhline(1, color="k", lw=0.8)
    ax.set_xlabel("score decile (1 = highest risk)")
    ax.set_ylabel("lift over base rate")
    ax.set_title("Lift by decile (test cutoff)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def forecast_plot(
    history: pd.Series,
    forecast: pd.DataFrame,
    title: str,
    path: Path,
    backtest: pd.DataFrame | None = None,
    history_days: int = 180,
) -> Path:
    """History, the published forecast with its 80% interval, and backtest predictions."""
    fig, ax = plt.subplots(figsize=(7, 3))
    h = history.iloc[-history_days:]
    ax.plot(h.index, h.values, color="0.3", lw=0.8, label="actual")
    if backtest is not None and len(backtest):
        bt = backtest[backtest["ds"] >= h.index.min()]
        for _, fold in bt.groupby("fold"):
            ax.plot(fold["ds"], fold["yhat"], color="tab:orange", lw=0.7, alpha=0.7)
        ax.plot([], [], color="tab:orange", label="backtest (champion)")
    ax.plot(forecast["ds"], forecast["yhat"], color="tab:blue", label="forecast")
    ax.fill_between(
        forecast["ds"], forecast["yhat_lower"], forecast["yhat_upper"], color="tab:blue", alpha=0.2, label="80% interval"
    )
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.autofmt_xdate()
    return _save(fig, path)


def metric_bars(table: pd.DataFrame, value: str, path: Path, title: str) -> Path:
    """Grouped bars: rows = series, columns = model (e.g. MASE per series and model)."""
    pivot = table.pivot(index="series", columns="model", values=value)
    fig, ax = plt.subplots(figsize=(7, 3))
    x = np.arange(len(pivot))
    width = 0.8 / max(len(pivot.columns), 1)
    for i, m in enumerate(pivot.columns):
        ax.bar(x + i * width, pivot[m].to_numpy(), width=width, label=m)
    ax.set_xticks(x + width * (len(pivot.columns) - 1) / 2, pivot.index, rotation=30, ha="right", fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)
