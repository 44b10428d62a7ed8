"""Latency and volume metrics of the sync, computed from the sync history and published to CloudWatch.

``names`` (what is published), ``model`` and ``windows`` (pure), ``publisher`` (CloudWatch), ``service`` (the
run). The DynamoDB side lives in ``nrtsync.adapters.history_reader``.
"""

from nrtsync.metrics.names import METRIC_NAMES

__all__ = ["METRIC_NAMES"]
