"""Churn model: population, labels and features as of a cutoff, temporal training, gate, scoring."""
