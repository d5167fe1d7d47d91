"""Demand forecasting: daily series, Prophet and baselines, rolling-origin backtests, publishing."""
