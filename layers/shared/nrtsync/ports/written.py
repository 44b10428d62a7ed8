"""What the state table says this product wrote to Salesforce, per mapped object (for the lost-deletes sweep)."""

from __future__ import annotations

from typing import Protocol


class WrittenRecords(Protocol):
    def written_record_ids(self, object_type: str) -> set[str]:
        """The Zuora record ids (a subscription's number) whose last written version is in Salesforce: written by
        this product, with a Salesforce Id, and not deleted since. Records someone else wrote are never here."""
        ...
