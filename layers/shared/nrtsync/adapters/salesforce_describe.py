"""Salesforce's sObject describe through the sync's Salesforce client (its token, retries and errors)."""

from __future__ import annotations

import time

from nrtsync.adapters.salesforce import SimpleSalesforceAdapter
from nrtsync.domain.models.salesforce import SalesforceError, SalesforceRequestError
from nrtsync.ports.salesforce_describe import SalesforceField

DESCRIBE_SECONDS = 30.0


class SalesforceDescribeClient(SimpleSalesforceAdapter):
    """Implements ``SalesforceSchemaPort`` (and still ``SalesforcePort``)."""

    def describe(self, sobject: str) -> list[SalesforceField] | None:
        try:
            answer = self._api_call("GET", f"sobjects/{sobject}/describe", None, time.monotonic() + DESCRIBE_SECONDS)
        except SalesforceRequestError as exc:
            if exc.http_status == 404:  # NOT_FOUND: the org has no such sObject (or the user cannot see it)
                return None
            raise
        fields = answer.get("fields") if isinstance(answer, dict) else None
        if not isinstance(fields, list):
            raise SalesforceError(f"the describe of {sobject} has no fields list")
        return [SalesforceField.from_describe(item) for item in fields if isinstance(item, dict)]
