"""The faults a test can inject: latency, late commits, the next answers, row locks, validation rules, approval
locks.

Each refusal is what Salesforce answers in that situation; the comments name where Salesforce documents it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from nrtsync_local.salesforce.answers import error_list, record_error
from nrtsync_local.standin.server import Answer

# Named faults: what Salesforce answers in that situation.
FAULT_KINDS: dict[str, tuple[int, str, str]] = {
    # The org's concurrent long-running request limit (25 requests running over 20 s in production), not the daily
    # allocation: Salesforce answers 403 REQUEST_LIMIT_EXCEEDED with this message ("API Request Limits and
    # Allocations", Salesforce Developer Limits and Allocations Quick Reference; help article 000389067).
    "concurrent_long_txn": (403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."),
    "concurrent_requests": (
        403,
        "REQUEST_LIMIT_EXCEEDED",
        "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
    ),
    # The daily allocation used up, as the stand-in answers it when api_used reaches api_limit.
    "total_requests": (403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
}


@dataclass
class Faults:
    """The faults in force; the stand-in's state holds one and replaces it on reset."""

    latency_ms: int = 0
    fail_next: list[dict[str, Any]] = field(default_factory=list)
    row_lock: dict[str, Any] | None = None
    validation_rules: list[dict[str, Any]] = field(default_factory=list)
    approval_locks: set[str] = field(default_factory=set)  # external ids of records locked by an approval process
    # The next ``count`` API calls are held ``delay_ms`` before they run: a client that gives up sooner sees a read
    # timeout, and the write still commits afterwards, as Salesforce goes on executing a request whose client left.
    commit_late: dict[str, int] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "commit_late": self.commit_late,
            "fail_next": self.fail_next,
            "row_lock": self.row_lock,
            "validation_rules": self.validation_rules,
            "approval_locks": sorted(self.approval_locks),
        }

    def update(self, changes: dict[str, Any], rng: random.Random) -> None:
        """Merges the fault keys given (the control API's ``POST /__standin/faults``)."""
        if "latency_ms" in changes:
            self.latency_ms = max(0, int(changes["latency_ms"]))
        if "fail_next" in changes:
            unknown = {f.get("kind") for f in changes["fail_next"] or []} - {None, *FAULT_KINDS}
            if unknown:
                raise ValueError(f"fail_next kind must be one of {sorted(FAULT_KINDS)}, not {sorted(unknown)}")
            self.fail_next = [dict(fault) for fault in changes["fail_next"] or []]
        if "commit_late" in changes:
            late = changes["commit_late"]
            self.commit_late = (
                {"count": int(late.get("count", 1)), "delay_ms": max(0, int(late["delay_ms"]))} if late else None
            )
        if "row_lock" in changes:
            self.row_lock = dict(changes["row_lock"]) if changes["row_lock"] else None
            if self.row_lock and "seed" in self.row_lock:
                rng.seed(self.row_lock["seed"])
        if "validation_rules" in changes:
            self.validation_rules = [dict(rule) for rule in changes["validation_rules"] or []]
        if "approval_locks" in changes:
            self.approval_locks = {str(ext) for ext in changes["approval_locks"] or []}

    def late_commit_seconds(self) -> float:
        """How long the next API call is held before it runs (0: not held); counts the call off ``commit_late``."""
        late = self.commit_late
        if not late:
            return 0.0
        late["count"] -= 1
        if late["count"] <= 0:
            self.commit_late = None
        return late["delay_ms"] / 1000.0

    def pop(self, endpoint: str) -> Answer | None:
        """The next injected answer for ``endpoint`` ("token" or "api"), removed from the queue; or None."""
        for position, fault in enumerate(self.fail_next):
            if fault.get("endpoint", "api") == endpoint:
                del self.fail_next[position]
                return injected_answer(fault)
        return None

    def record_refusal(
        self, sobject: str, ext_value: str, record_id: str | None, record: dict[str, Any], rng: random.Random
    ) -> dict[str, Any] | None:
        """The per-record error an injected fault gives this record, or None."""
        return (
            self._row_lock_error(ext_value, record_id, rng)
            or self._approval_lock_error(ext_value, record_id)
            or self._validation_error(sobject, record)
        )

    def _row_lock_error(self, ext_value: str, record_id: str | None, rng: random.Random) -> dict[str, Any] | None:
        lock = self.row_lock
        if not lock:
            return None
        locked = ext_value in set(lock.get("external_ids") or []) or (
            float(lock.get("rate", 0.0)) > 0 and rng.random() < float(lock["rate"])
        )
        if not locked:
            return None
        if "count" in lock:
            lock["count"] = int(lock["count"]) - 1
            if lock["count"] <= 0:
                self.row_lock = None
        target = record_id or ext_value
        return record_error(
            "UNABLE_TO_LOCK_ROW", f"unable to obtain exclusive access to this record or 1 records: {target}", []
        )

    def _approval_lock_error(self, ext_value: str, record_id: str | None) -> dict[str, Any] | None:
        # A record submitted for approval is locked until it is approved or rejected: every update of it fails with
        # ENTITY_IS_LOCKED (StatusCode list, SOAP API Developer Guide; the Approval class, Apex Reference) for as long
        # as a person takes. Only an existing record can be locked; the lock lasts until the fault is cleared.
        if record_id is None or ext_value not in self.approval_locks:
            return None
        return record_error("ENTITY_IS_LOCKED", "the entity is locked for editing", [])

    def _validation_error(self, sobject: str, record: dict[str, Any]) -> dict[str, Any] | None:
        for rule in self.validation_rules:
            if rule.get("sobject") not in (None, sobject):
                continue
            name = str(rule.get("field", "Name"))
            if name in record and record[name] == rule.get("equals"):
                message = str(rule.get("message") or f"{name} value is not allowed")
                return record_error("FIELD_CUSTOM_VALIDATION_EXCEPTION", message, [])
        return None


def injected_answer(fault: dict[str, Any]) -> Answer:
    """What the stand-in answers for one ``fail_next`` entry: a named ``kind``, or a status with optional body."""
    kind = fault.get("kind")
    if kind is not None:
        status, code, message = FAULT_KINDS[kind]
        return Answer(status, error_list(code, message))
    status = int(fault.get("status", 503))
    default_codes = {500: "UNKNOWN_EXCEPTION", 502: "BAD_GATEWAY", 503: "SERVER_UNAVAILABLE"}
    body = fault.get("body")
    if body is None:
        code = default_codes.get(status, "INJECTED_FAULT")
        body = error_list(code, f"Injected fault: HTTP {status}")
    return Answer(status, body, {str(k): str(v) for k, v in (fault.get("headers") or {}).items()})
