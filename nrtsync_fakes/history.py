"""The sync history in memory (``nrtsync.ports.history.HistoryWriter``): the real ``DynamoHistoryWriter`` (item
building, serialisation, chunks of 25) over a table that keeps the items in a dict instead of answering over HTTP.
"""

from __future__ import annotations

import threading
from typing import Any

from nrtsync.adapters.aws.history import DynamoHistoryWriter


class InMemoryTable:
    """The one DynamoDB call the history writer makes, BatchWriteItem, into a dict (everything processed)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls = 0
        self._lock = threading.Lock()

    def batch_write_item(self, *, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:  # noqa: N803
        with self._lock:
            self.calls += 1
            for requests in RequestItems.values():
                for request in requests:
                    item = request["PutRequest"]["Item"]
                    self.items[(item["pk"]["S"], item["sk"]["S"])] = item
        return {"UnprocessedItems": {}}


def in_memory_history(table: InMemoryTable | None = None) -> tuple[DynamoHistoryWriter, InMemoryTable]:
    """The production history writer over an in-memory table."""
    table = table or InMemoryTable()
    return DynamoHistoryWriter("bench-history", ttl_days=30, client=table), table  # type: ignore[arg-type]
