"""Comparing a job's results across runners (local processes, Spark)."""

from __future__ import annotations

from typing import Any


def without_cpu_seconds(value: Any) -> Any:
    """``value`` without its measured CPU times, the one thing that differs between runs."""
    if isinstance(value, dict):
        return {k: without_cpu_seconds(v) for k, v in value.items() if k != "cpuSeconds"}
    if isinstance(value, list):
        return [without_cpu_seconds(v) for v in value]
    return value
