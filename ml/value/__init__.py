"""Customer lifetime value: BG/NBD purchase counts × Gamma-Gamma order values (no Dagster here)."""
