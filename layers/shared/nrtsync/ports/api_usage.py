"""The org's API usage as the functions share it: the sync saves each reading, the budget guard of every sync
container, the backfill's pacing and the metrics function read it."""

from __future__ import annotations

from typing import Protocol

from nrtsync.ports.salesforce import ApiUsage


class ApiUsageReader(Protocol):
    def api_usage(self) -> ApiUsage | None:
        """The org's API usage as a sync last saw it; None before the first reading (or for one unreadable)."""
        ...


class ApiUsageStore(ApiUsageReader, Protocol):
    def save_api_usage(self, usage: ApiUsage) -> None:
        """Keep ``usage`` for every other function to read."""
        ...
