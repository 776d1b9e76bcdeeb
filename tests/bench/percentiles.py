"""Nearest-rank percentiles for the benchmarks' tables (no interpolation: every figure
printed is one that was measured)."""

from __future__ import annotations


def pct(values: list[float], q: float) -> float:
    """The value at quantile q (0..1) of `values`, by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fmt(values: list[float], q: float, minus: float = 0.0) -> str:
    """pct(values, q) - minus with two decimals, or '-' when nothing was measured."""
    return f"{pct(values, q) - minus:.2f}" if values else "-"
