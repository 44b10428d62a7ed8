"""The write resources: sObject Collections upsert, sObject Rows upsert by external ID, and Composite."""

from __future__ import annotations

import copy
import random
from collections import Counter
from typing import Any
from urllib.parse import unquote

from nrtsync_local.salesforce.answers import (
    COLLECTION_PATH,
    COLLECTIONS_ROOT_PATH,
    DATA_PATH,
    ROW_BY_EXTERNAL_ID_PATH,
    error_list,
    method_not_allowed,
    not_found,
    record_error,
)
from nrtsync_local.salesforce.deletes import delete_collection
from nrtsync_local.salesforce.faults import Faults
from nrtsync_local.salesforce.records import RecordStore, find_ids
from nrtsync_local.salesforce.schema import not_an_external_id
from nrtsync_local.standin.server import Answer

MAX_COLLECTION_RECORDS = 200
MAX_COMPOSITE_SUBREQUESTS = 25
MAX_COMPOSITE_COLLECTIONS = 5  # sObject Collections (or query) subrequests per Composite request
# From API version 46.0 an upsert that updates answers 200 with a body (``created: false``); before, 204.
_UPSERT_UPDATE_BODY_SINCE = 46.0


class Upserts:
    """One authenticated write request against the store; ``records_per_call`` is the stats list it appends to."""

    def __init__(self, store: RecordStore, faults: Faults, rng: random.Random, records_per_call: list[int]) -> None:
        self._store = store
        self._faults = faults
        self._rng = rng
        self._records_per_call = records_per_call

    def upsert(self, rest: str, payload: Any, version: str) -> Answer | None:
        """A PATCH upsert (sObject Collections or sObject Rows by External ID), standalone or as a Composite
        subrequest; ``None`` if ``rest`` is neither."""
        row = ROW_BY_EXTERNAL_ID_PATH.match(rest)
        if row is not None:
            return self._upsert_row(row["sobject"], row["field"], unquote(row["value"]), payload, version)
        collection = COLLECTION_PATH.match(rest)
        if collection is not None:
            return self._upsert_collection(collection["sobject"], collection["field"], payload)
        return None

    # --- Composite -----------------------------------------------------------------------------

    def composite(self, payload: Any) -> Answer:
        """``POST /composite``: the subrequests run in order (``collateSubrequests`` is not modelled), each
        through the same code as its standalone resource, as one API call. Supported subrequests: PATCH upserts
        by sObject Collections and by sObject Rows by External ID, and sObject Collections DELETE (``?ids=``,
        counted as one of the five collections); others get a 400 of their own. ``@{ref}``
        references are not resolved. An outer ``allOrNone: true`` rolls everything back if any subrequest or
        record fails (the others answer 400 ``PROCESSING_HALTED``)."""
        subrequests = payload.get("compositeRequest") if isinstance(payload, dict) else None
        if not isinstance(subrequests, list) or not subrequests or not all(isinstance(s, dict) for s in subrequests):
            return Answer(400, error_list("JSON_PARSER_ERROR", "compositeRequest must be a non-empty array of objects"))
        if len(subrequests) > MAX_COMPOSITE_SUBREQUESTS:
            return _composite_refusal(
                f"The request can\u2019t contain more than {MAX_COMPOSITE_SUBREQUESTS} operations."
            )
        collections = sum(1 for s in subrequests if _is_collection(_subrequest_rest(s.get("url")) or ""))
        if collections > MAX_COMPOSITE_COLLECTIONS:
            return _composite_refusal(
                f"The request can\u2019t contain more than {MAX_COMPOSITE_COLLECTIONS} sObject Collections or query "
                "operations."
            )
        all_or_none = bool(payload.get("allOrNone", False))
        snapshot = copy.deepcopy(self._store.by_sobject) if all_or_none else None
        records_mark = len(self._records_per_call)
        results = [self._subrequest(sub, all_or_none) for sub in subrequests]
        # One API call: the records of all its subrequests make one entry of records_per_call.
        counted = self._records_per_call[records_mark:]
        if counted:
            del self._records_per_call[records_mark:]
            self._records_per_call.append(sum(counted))
        if snapshot is not None and any(not _subresult_succeeded(result) for result in results):
            self._store.by_sobject = snapshot
            results = [_halted(result) for result in results]
        return Answer(200, {"compositeResponse": results})

    def _subrequest(self, sub: dict[str, Any], all_or_none: bool) -> dict[str, Any]:
        method, url = str(sub.get("method", "")).upper(), sub.get("url")
        target = DATA_PATH.match(url.split("?", 1)[0]) if isinstance(url, str) else None
        rest = (target["rest"] or "/") if target else ""
        body = sub.get("body")
        if all_or_none and COLLECTION_PATH.match(rest) and isinstance(body, dict):
            body = {**body, "allOrNone": True}  # the outer allOrNone overrides the collections' own
        answer = self.upsert(rest, body, target["version"]) if target and method == "PATCH" else None
        if target and method == "DELETE" and COLLECTIONS_ROOT_PATH.match(rest):
            query = url.split("?", 1)[1] if isinstance(url, str) and "?" in url else ""
            if all_or_none:
                query += "&allOrNone=true"  # the outer allOrNone overrides the collection's own
            answer = delete_collection(self._store, query, self._records_per_call)
        if answer is None and target and (COLLECTION_PATH.match(rest) or ROW_BY_EXTERNAL_ID_PATH.match(rest)):
            answer = method_not_allowed(method, "PATCH")
        if answer is None:
            message = (
                f"The stand-in's Composite runs PATCH upserts (sObject Collections, external ID) only: {method} {url}"
            )
            answer = Answer(400, error_list("INVALID_INPUT", message))
        return {
            "body": answer.body,
            "httpHeaders": dict(answer.headers),
            "httpStatusCode": answer.status,
            "referenceId": sub.get("referenceId"),
        }

    # --- sObject Collections upsert --------------------------------------------------------

    def _upsert_collection(self, sobject: str, ext_field: str, payload: Any) -> Answer:
        if sobject not in self._store.config.sobjects:
            return not_found()
        records = payload.get("records") if isinstance(payload, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            return Answer(400, error_list("JSON_PARSER_ERROR", "Expected a JSON object with a records array"))
        if len(records) > MAX_COLLECTION_RECORDS:
            return Answer(
                400,
                error_list(
                    "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call"
                ),
            )
        refusal = self._not_an_external_id(sobject, ext_field) or self._store.check_records(sobject, records)
        if refusal is not None:
            return refusal
        self._records_per_call.append(len(records))
        all_or_none = bool(payload.get("allOrNone", False))
        # Only allOrNone needs a copy to roll back to; otherwise each record's outcome stands on its own, as in
        # Salesforce (copying every stored record per call made a 100,000-record backfill crawl late in the run).
        staged = (
            copy.deepcopy(self._store.by_sobject.get(sobject, {}))
            if all_or_none
            else self._store.by_sobject.setdefault(sobject, {})
        )
        ext_values = [record.get(ext_field) for record in records]
        duplicates = {value for value, seen in Counter(v for v in ext_values if v is not None).items() if seen > 1}
        results = [self._upsert_one(sobject, ext_field, record, staged, duplicates) for record in records]
        if all_or_none and not all(result["success"] for result in results):
            results = [_rolled_back(result) for result in results]
        else:
            self._store.by_sobject[sobject] = staged
        return Answer(200, results)

    # --- sObject Rows by External ID upsert (one record per call) ----------------------------

    def _upsert_row(self, sobject: str, ext_field: str, ext_value: str, payload: Any, version: str) -> Answer:
        """``PATCH /sobjects/{SObject}/{ExternalIdField}/{value}``: 201 on create; on update 200 with
        ``created: false`` (API 46.0 and later) or 204 without a body (earlier versions).

        A refused record is the whole answer here (``_row_refusal``).
        """
        if sobject not in self._store.config.sobjects:
            return not_found()
        if not isinstance(payload, dict):
            return Answer(400, error_list("JSON_PARSER_ERROR", "Expected a JSON object for the record"))
        record = {**payload, "attributes": {"type": sobject}, ext_field: ext_value}
        refusal = self._not_an_external_id(sobject, ext_field) or self._store.check_records(sobject, [record])
        if refusal is not None:
            return refusal
        self._records_per_call.append(1)
        result = self._upsert_one(sobject, ext_field, record, self._store.by_sobject.setdefault(sobject, {}), set())
        if not result["success"]:
            return self._row_refusal(sobject, ext_field, ext_value, result, version)
        if result["created"]:
            return Answer(201, result, {"Location": f"/services/data/v{version}/sobjects/{sobject}/{result['id']}"})
        return Answer(200, result) if float(version) >= _UPSERT_UPDATE_BODY_SINCE else Answer(204, None)

    def _row_refusal(
        self, sobject: str, ext_field: str, ext_value: str, result: dict[str, Any], version: str
    ) -> Answer:
        """A refused row is the whole answer: 400 with Salesforce's error list, or, when the value matches several
        records, HTTP 300 with their URLs (REST API Developer Guide, "Insert or Update (Upsert) a Record Using an
        External ID")."""
        if result["errors"][0]["statusCode"] == "DUPLICATE_EXTERNAL_ID":
            matches = find_ids(self._store.by_sobject.get(sobject, {}), ext_field, ext_value)
            return Answer(300, [f"/services/data/v{version}/sobjects/{sobject}/{match}" for match in matches])
        errors = [
            {"message": e["message"], "errorCode": e["statusCode"], "fields": e["fields"]} for e in result["errors"]
        ]
        return Answer(400, errors)

    def _not_an_external_id(self, sobject: str, ext_field: str) -> Answer | None:
        """An upsert must match on an External ID field; Salesforce refuses the request otherwise (the message
        as Salesforce words it for sObject Rows by External ID; assumed the same for a collection)."""
        message = not_an_external_id(self._store.config.package.get(sobject, {}), sobject, ext_field)
        return None if message is None else Answer(400, error_list("INVALID_FIELD", message))

    def _upsert_one(
        self, sobject: str, ext_field: str, record: dict[str, Any], staged: dict[str, Any], duplicates: set[Any]
    ) -> dict[str, Any]:
        return self._store.upsert_one(
            sobject, ext_field, record, staged, duplicates, faults=self._faults, rng=self._rng
        )


def _rolled_back(result: dict[str, Any]) -> dict[str, Any]:
    if not result["success"]:
        return result
    return record_error(
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "Record rolled back because not all records were valid and the request was using AllOrNone header",
        [],
    )


def _is_collection(rest: str) -> bool:
    return bool(COLLECTION_PATH.match(rest) or COLLECTIONS_ROOT_PATH.match(rest))


def _subrequest_rest(url: Any) -> str | None:
    match = DATA_PATH.match(url.split("?", 1)[0]) if isinstance(url, str) else None
    return (match["rest"] or "/") if match else None


def _composite_refusal(message: str) -> Answer:
    """A Composite request refused whole, as Salesforce answers it: one entry without a referenceId."""
    entry = {"body": error_list("LIMIT_EXCEEDED", message), "httpHeaders": {}, "httpStatusCode": 400}
    return Answer(400, {"compositeResponse": [{**entry, "referenceId": None}]})


def _subresult_succeeded(result: dict[str, Any]) -> bool:
    if not 200 <= int(result["httpStatusCode"]) < 300:
        return False
    body = result["body"]
    return not isinstance(body, list) or all(item.get("success", True) for item in body if isinstance(item, dict))


def _halted(result: dict[str, Any]) -> dict[str, Any]:
    if not _subresult_succeeded(result):
        return result
    body = error_list(
        "PROCESSING_HALTED", "The transaction was rolled back since another operation in the same transaction failed."
    )
    return {**result, "body": body, "httpHeaders": {}, "httpStatusCode": 400}
