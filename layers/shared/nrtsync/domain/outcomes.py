"""What happened to each change, and how a Salesforce error is classified."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum


class Outcome(StrEnum):
    WRITTEN = "written"
    """Salesforce accepted the newest version."""
    SUPERSEDED = "superseded"
    """A newer change to the same record was in the same batch and was written instead."""
    DUPLICATE = "duplicate"
    """This exact change was already written (Zuora re-delivered it)."""
    STALE = "stale"
    """A newer version of the record is already in Salesforce (or being written): never overwrite it."""
    HELD = "held"
    """Not sent: its billing account has no CRM link yet; written once the link arrives (not a failure)."""
    WAITING = "waiting"
    """Retryable: the message goes back to the queue and comes again in seconds."""
    FAILED = "failed"
    """Permanent: parked in the failure list with Salesforce's error, acknowledged."""


class RetryReason(StrEnum):
    """Why a change waits on the queue: the ``error_code`` of its ``waiting`` outcome when the reason is ours (a
    record Salesforce refused waits with Salesforce's own code). Stored and logged as these very strings."""

    STATE_UNAVAILABLE = "STATE_UNAVAILABLE"
    """The state table could not be read or written: the claim, the inherited fields or the commit."""
    RECORD_BUSY = "RECORD_BUSY"
    """Another session holds the record's lease."""
    BREAKER_OPEN = "BREAKER_OPEN"
    """The circuit breaker is open: nothing goes to Salesforce until its probe closes it."""
    API_BUDGET_REACHED = "API_BUDGET_REACHED"
    """The org's API usage is at or over the budget this product may spend."""
    API_LIMIT_EXCEEDED = "API_LIMIT_EXCEEDED"
    """Not sent: an earlier call of this session found the API allocation used up."""
    REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
    """Salesforce refused the call for the daily API allocation (403 ``REQUEST_LIMIT_EXCEEDED``)."""
    CONCURRENT_REQUEST_LIMIT = "CONCURRENT_REQUEST_LIMIT"
    """Salesforce refused the call for its concurrent long-running request limit (frees up in seconds)."""
    SALESFORCE_AUTH = "SALESFORCE_AUTH"
    """Salesforce refused our credentials."""
    SALESFORCE_REFUSED = "SALESFORCE_REFUSED"
    """Salesforce refused the call itself, not its records (the API switched off for the org, the API version
    retired, a token refused after its refresh): the breaker is open until an operator acts."""
    SALESFORCE_UNAVAILABLE = "SALESFORCE_UNAVAILABLE"
    """Salesforce could not be reached or answered 5xx until the attempts or the deadline ran out."""
    UNPAIRED_RESPONSE = "UNPAIRED_RESPONSE"
    """Salesforce's answer could not be paired with the records sent: never guess a record's outcome."""
    OUT_OF_TIME = "OUT_OF_TIME"
    """The invocation's deadline came before the change was sent."""


class ParkReason(StrEnum):
    """Why a change was parked when Salesforce never saw it (a refused record is parked with Salesforce's code)."""

    MAPPING_ERROR = "MAPPING_ERROR"
    """The change cannot be made into a Salesforce record (a value the field's type cannot hold)."""
    MALFORMED_MESSAGE = "MALFORMED_MESSAGE"
    """The queue message is no queued change at all."""


class ErrorKind(StrEnum):
    PARENT_MISSING = "parent_missing"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"


RETRYABLE_CODES = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "REQUEST_LIMIT_EXCEEDED",
        "SERVER_UNAVAILABLE",
        "REQUEST_RUNNING_TOO_LONG",
        "QUERY_TIMEOUT",
    }
)
# Not retryable although it sounds like a lock: ENTITY_IS_LOCKED is a record locked by an approval process, held
# until a person approves or rejects it (hours or days), so retrying in seconds only spends the queue's receives
# and ends in the dead-letter queue. It is parked (permanent) like any other error someone must resolve first.

# Salesforce reports a parent that is not there (yet) as INVALID_FIELD with this wording.
_PARENT_MISSING_MARKERS = ("foreign key external id", "not found")


def classify(status_codes_and_messages: Sequence[tuple[str, str]]) -> ErrorKind:
    """Classify one record's errors: any permanent error makes the record permanent."""
    kinds = set()
    for code, message in status_codes_and_messages:
        lowered = message.lower()
        if code == "INVALID_FIELD" and all(marker in lowered for marker in _PARENT_MISSING_MARKERS):
            kinds.add(ErrorKind.PARENT_MISSING)
        elif code in RETRYABLE_CODES:
            kinds.add(ErrorKind.RETRYABLE)
        else:
            kinds.add(ErrorKind.PERMANENT)
    if not kinds or ErrorKind.PERMANENT in kinds:
        return ErrorKind.PERMANENT
    if ErrorKind.PARENT_MISSING in kinds:
        return ErrorKind.PARENT_MISSING
    return ErrorKind.RETRYABLE
