"""An in-memory Salesforce (``SalesforcePort``); the HTTPS stand-in (``nrtsync_local.salesforce``) speaks its API."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nrtsync.domain.models.salesforce import (
    CollectionDelete,
    CollectionUpsert,
    RecordError,
    RecordResult,
    SalesforceError,
    SalesforceLimitExceededError,
    SalesforceRequestError,
    SalesforceRetryableError,
)
from nrtsync.ports.salesforce import MAX_COLLECTIONS_PER_COMPOSITE, ApiUsage

# Which sObject a relationship field points to, as in Zuora 360.
RELATIONSHIPS = {
    "Zuora__CustomerAccount__r": "Zuora__CustomerAccount__c",
    "Zuora__BillingAccount__r": "Zuora__CustomerAccount__c",
}
# Zuora 360's master-detail fields (nrtsync_local/salesforce/zuora360_package.json): required when a record is
# created, never cleared. Salesforce answers REQUIRED_FIELD_MISSING for either; a field may also be set through its
# relationship's external id (``<name>__r``).
MASTER_DETAIL = {
    "Zuora__CustomerAccount__c": ("Zuora__Account__c",),
    "Zuora__Payment__c": ("Zuora__BillingAccount__c",),
}


@dataclass
class FakeSalesforce:
    """Upserts by external id into dicts, with Salesforce's per-record semantics and injectable faults."""

    api_limit: int = 100_000
    api_used: int = 0
    latency_s: float = 0.0
    refuse: dict[str, tuple[str, str]] = field(default_factory=dict)  # external id -> (statusCode, message)
    # external id -> (errorCode, message): a collection holding it is refused whole with HTTP 400, like a value
    # Salesforce cannot deserialize (JSON_PARSER_ERROR)
    refuse_collection: dict[str, tuple[str, str]] = field(default_factory=dict)
    # external ids: a collection holding one fails with HTTP 500 UNKNOWN_EXCEPTION (nothing of it written), as one
    # record can make Salesforce fail its whole collection
    crash_collection: set[str] = field(default_factory=set)
    on_call: Callable[[], None] | None = None  # runs at each API call (e.g. to advance a test clock)
    fail_calls: list[type[Exception]] = field(default_factory=list)  # exceptions raised by the next calls
    # The next calls succeed only after an attempt in doubt (an adapter's retry after a read timeout): each one
    # reports last_call_in_doubt.
    doubt_calls: int = 0
    last_call_in_doubt: bool = False
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    calls: list[tuple[str, int]] = field(default_factory=list)  # (sobject, records) per collection upsert
    api_requests: list[list[tuple[str, int]]] = field(default_factory=list)  # the collections of each API call
    deletes: list[tuple[str, int]] = field(default_factory=list)  # (sobject, ids) per collection delete
    lookups: list[tuple[str, str]] = field(default_factory=list)  # (sobject, external id) per find_id call
    deleted_ids: set[str] = field(default_factory=set)  # in the recycle bin: ENTITY_IS_DELETED on a second delete
    usage_checks: int = 0
    enforce_master_detail: bool = True
    """False only for a test about something else that needs records without their master (a bare org)."""
    fail_usage_checks: list[type[Exception]] = field(default_factory=list)  # raised by the next /limits reads
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _usage: ApiUsage | None = None

    @property
    def api_usage(self) -> ApiUsage | None:
        return self._usage

    @property
    def api_calls(self) -> int:
        return len(self.api_requests) + self.usage_checks + len(self.lookups)

    def find_id(self, sobject: str, external_id_field: str, value: str, *, deadline: float) -> str | None:
        with self._lock:
            self.lookups.append((sobject, value))
            self._count_call()
            record = self.records.get(sobject, {}).get(value)
            return None if record is None else str(record["Id"])

    def _count_call(self) -> None:
        self.api_used += 1
        self._usage = ApiUsage(used=self.api_used, limit=self.api_limit, observed_at=datetime.now(UTC))

    def fetch_api_usage(self, *, deadline: float) -> ApiUsage:
        with self._lock:
            if self.fail_usage_checks:
                raise self.fail_usage_checks.pop(0)("limits: injected failure")
            self.usage_checks += 1
            self._count_call()
            assert self._usage is not None
            return self._usage

    def upsert_collections(
        self, requests: Sequence[CollectionUpsert | CollectionDelete], *, deadline: float
    ) -> list[list[RecordResult] | SalesforceError]:
        """One API call, collections executed in order (so a parent written first is found by its children)."""
        assert 1 <= len(requests) <= MAX_COLLECTIONS_PER_COMPOSITE
        if self.latency_s:
            # Real time on purpose: sessions running in threads must overlap inside a call, as they do in an org.
            time.sleep(self.latency_s)
        if self.on_call is not None:
            self.on_call()
        with self._lock:
            if self.api_used >= self.api_limit:
                raise SalesforceLimitExceededError("TotalRequests Limit exceeded.")
            self.api_requests.append(
                [
                    (f"DELETE {r.sobject}", len(r.ids))
                    if isinstance(r, CollectionDelete)
                    else (r.sobject, len(r.records))
                    for r in requests
                ]
            )
            self._count_call()
            if self.fail_calls:
                raise self.fail_calls.pop(0)("injected")
            self.last_call_in_doubt = self.doubt_calls > 0
            self.doubt_calls = max(0, self.doubt_calls - 1)
            answers: list[list[RecordResult] | SalesforceError] = []
            for request in requests:
                if isinstance(request, CollectionDelete):
                    self.deletes.append((request.sobject, len(request.ids)))
                    answers.append([self._delete_one(salesforce_id) for salesforce_id in request.ids])
                    continue
                assert len(request.records) <= 200, "sObject Collections takes at most 200 records"
                self.calls.append((request.sobject, len(request.records)))
                refused = next(
                    (
                        self.refuse_collection[r[request.external_id_field]]
                        for r in request.records
                        if r[request.external_id_field] in self.refuse_collection
                    ),
                    None,
                )
                if any(r[request.external_id_field] in self.crash_collection for r in request.records):
                    answers.append(
                        SalesforceRetryableError(
                            f"upsert {request.sobject}: HTTP 500 UNKNOWN_EXCEPTION", in_doubt=False, http_status=500
                        )
                    )
                    continue
                if refused is not None:
                    code, message = refused
                    answers.append(
                        SalesforceRequestError(
                            f"upsert {request.sobject}: HTTP 400 {code}: {message}", status_code=code, http_status=400
                        )
                    )
                    continue
                table = self.records.setdefault(request.sobject, {})
                answers.append(
                    [self._upsert_one(request.sobject, table, request.external_id_field, r) for r in request.records]
                )
            return answers

    def _delete_one(self, salesforce_id: str) -> RecordResult:
        # DeleteResults as "Delete Records Using sObject Collections" answers them: the id on success, an error
        # (ENTITY_IS_DELETED / INVALID_CROSS_REFERENCE_KEY) for an id already gone.
        for table in self.records.values():
            for ext_id, record in list(table.items()):
                if record["Id"] == salesforce_id:
                    if ext_id in self.refuse:
                        code, message = self.refuse[ext_id]
                        return RecordResult(success=False, errors=[RecordError(status_code=code, message=message)])
                    del table[ext_id]
                    self.deleted_ids.add(salesforce_id)
                    return RecordResult(success=True, salesforce_id=salesforce_id)
        code = "ENTITY_IS_DELETED" if salesforce_id in self.deleted_ids else "INVALID_CROSS_REFERENCE_KEY"
        return RecordResult(success=False, errors=[RecordError(status_code=code, message="gone")])

    def _upsert_one(
        self, sobject: str, table: dict[str, dict[str, Any]], ext_field: str, record: dict[str, Any]
    ) -> RecordResult:
        ext_id = record[ext_field]
        if ext_id in self.refuse:
            code, message = self.refuse[ext_id]
            return RecordResult(success=False, errors=[RecordError(status_code=code, message=message)])
        for name, value in record.items():
            if name.endswith("__r"):
                parent_table = self.records.get(RELATIONSHIPS[name], {})
                parent_id = next(iter(value.values()))
                if parent_id not in parent_table:
                    return RecordResult(
                        success=False,
                        errors=[
                            RecordError(
                                status_code="INVALID_FIELD",
                                message=f"Foreign key external ID: {parent_id} not found for field "
                                f"Zuora__External_Id__c in entity {RELATIONSHIPS[name]}",
                            )
                        ],
                    )
        existing = table.get(ext_id)
        created = existing is None
        missing = self._missing_master(sobject, record, created=created)
        if missing is not None:
            return RecordResult(success=False, errors=[missing])
        sf_id = existing["Id"] if existing else f"a0{next(self._ids):016d}"
        table[ext_id] = {**(existing or {}), **record, "Id": sf_id}
        return RecordResult(success=True, salesforce_id=sf_id, created=created)

    def _missing_master(self, sobject: str, record: dict[str, Any], *, created: bool) -> RecordError | None:
        """Salesforce's REQUIRED_FIELD_MISSING for a master-detail absent on insert or cleared on update."""
        if not self.enforce_master_detail:
            return None
        for name in MASTER_DETAIL.get(sobject, ()):
            relationship = name[:-3] + "__r"
            given = record.get(name) not in (None, "") or bool(record.get(relationship))
            cleared = name in record and record[name] in (None, "")
            if (created and not given) or cleared:
                return RecordError(
                    status_code="REQUIRED_FIELD_MISSING", message=f"Required fields are missing: [{name}]"
                )
        return None
