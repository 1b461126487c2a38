"""Metrics of the evaluation harness; every result carries the protocol it was measured under."""
from sprint_bench.eval.metrics.base import MetricResult, Protocol

__all__ = ["MetricResult", "Protocol"]
