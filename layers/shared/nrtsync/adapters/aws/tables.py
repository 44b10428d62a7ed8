"""The two DynamoDB tables' keys and item shapes, in one place (template.yaml declares the tables themselves).

SyncStateTable (key ``pk``), written and read by the sync function:
- ``<object>#<zuora id>``: the last version written to Salesforce and the record's lease
  (``written_version``, ``written_hash``, ``written_at``, ``salesforce_id``, ``lease_*``, ``kept_<Field>``;
  ``deleted``: true when the written version is a delete, a tombstone that keeps older changes stale;
  ``parked_version``: the newest version parked on the failure list, which sweeps of Zuora do not queue again).
- ``ORG#API_USAGE``: the org's API usage as the sync function last saw it (``used``, ``limit``,
  ``observed_at``; ``percent`` for people reading the table, never read back).
- ``ORG#BREAKER``: the circuit breaker (``state`` open/closed, ``reason``, ``message``, ``since``, ``by``,
  ``updated_at``, and ``failures``: consecutive failed Salesforce calls); the CLI reads and writes it too.
- ``SWEEP#<sweep>#<object>``: a sweep of Zuora's records (``reconcile``, ``backfill-<id>``) for one object:
  ``watermark`` (the end of the last window read to its end) and, while a window is being read, its cursor
  (``since``, ``until``, ``query_locator``, ``pages``, ``read``, ``queued``, ``malformed``, ``restarts``).
- ``BACKFILL#<run id>``: one backfill run (``services.backfill``): ``objects`` (in write order), ``since``,
  ``until`` (fixed at creation), ``created_at``, ``status`` (running/waiting/done/failed), ``reason``,
  ``updated_at``, ``steps``, and ``progress``: per object ``pages``, ``read``, ``queued``, ``malformed``,
  ``started_at``, ``finished_at``. Its cursors are the sweep's ``SWEEP#backfill-<run id>#<object>`` items.
- ``BACKFILL#INDEX``: ``runs``, the string set of every run id (so listing runs never scans the table).
- ``HELD#<object>#<zuora id>``: changes held until that billing account has its CRM link (``changes``: a map of
  record key -> ``{version, change}``, the newest held version of each record; ``ports.holds``).

SyncHistoryTable (keys ``pk``/``sk``); the sync function writes the first four, the metrics function the rest:
- ``SESSION#<date>`` / ``<started_at>#<session_id>``: one item per sync session (invocation).
- ``RECORD#<object>#<zuora id>`` / ``<decided_at>#<session_id>#<n>``: one record's trail.
- ``MINUTE#<YYYY-MM-DDTHH:MM>`` / ``<object>#<session_id>``: counts and raw latencies for the metrics function.
- ``FAILURE`` / ``<object>#<zuora id>#<version>``: the failure list, kept until an operator retries it.
- ``ROLLUP#HOUR`` / ``<YYYY-MM-DDTHH>#<object_type>``: one closed hour of one object type (counts and
  log-bucketed latency histograms); all rollups share one partition so a 7-day window is one Query.
- ``ROLLUP#HOUR`` / ``<YYYY-MM-DDTHH>``: the hour's completion marker, written after its rollups.
- ``METRICS#WATERMARK`` / ``DISTRIBUTION``: the last minute whose raw latencies were published.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any, Final

from nrtsync.adapters.aws.clients import STANDARD_CONFIG
from nrtsync.ports.backfill import BackfillRun, BackfillStatus, ObjectProgress
from nrtsync.ports.breaker import BreakerReason, BreakerState
from nrtsync.ports.metrics import MINUTE_FORMAT, minute_key
from nrtsync.ports.salesforce import ApiUsage
from nrtsync.ports.sweep import SweepCursor

if TYPE_CHECKING:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

# Short timeouts and a few standard retries (STANDARD_CALL): every caller has a deadline and retries whole steps.
DYNAMODB_CONFIG: Final = STANDARD_CONFIG

HOUR_FORMAT: Final = "%Y-%m-%dT%H"

# -- the state table -----------------------------------------------------------------------------------------
API_USAGE_KEY: Final = "ORG#API_USAGE"
BREAKER_KEY: Final = "ORG#BREAKER"
# A field a child inherits (mapping ``inherit``) is kept on its parent's state item as ``kept_<Field>``.
KEPT_PREFIX: Final = "kept_"

# -- the history table ---------------------------------------------------------------------------------------
FAILURE_PK: Final = "FAILURE"
ROLLUP_PK: Final = "ROLLUP#HOUR"
WATERMARK_KEY: Final = {"pk": {"S": "METRICS#WATERMARK"}, "sk": {"S": "DISTRIBUTION"}}


def hour_key(hour: datetime) -> str:
    """The UTC hour as the rollup items spell it: ``YYYY-MM-DDTHH``."""
    return hour.astimezone(UTC).strftime(HOUR_FORMAT)


def parse_minute_key(text: str) -> datetime:
    """The minute a ``minute_key`` names; raises ValueError."""
    return datetime.strptime(text, MINUTE_FORMAT).replace(tzinfo=UTC)


def parse_hour_key(text: str) -> datetime:
    """The hour an ``hour_key`` names; raises ValueError."""
    return datetime.strptime(text, HOUR_FORMAT).replace(tzinfo=UTC)


def session_pk(day: date) -> str:
    return f"SESSION#{day.isoformat()}"


def session_sk(started_at: datetime, session_id: str) -> str:
    return f"{started_at.isoformat(timespec='milliseconds')}#{session_id}"


def record_pk(object_type: str, record_id: str) -> str:
    return f"RECORD#{object_type}#{record_id}"


def sweep_key(sweep: str, object_type: str) -> str:
    return f"SWEEP#{sweep}#{object_type}"


_CURSOR_COUNTS = ("pages", "read", "queued", "malformed", "restarts")
SWEEP_CURSOR_ATTRIBUTES: Final = ("object_type", "since", "until", "query_locator", *_CURSOR_COUNTS)


def sweep_cursor_values(cursor: SweepCursor) -> dict[str, AttributeValueTypeDef]:
    """A cursor's attributes (an UpdateItem's values: the item's ``watermark`` is kept as it is)."""
    values: dict[str, AttributeValueTypeDef] = {
        "object_type": {"S": cursor.object_type},
        "since": {"S": cursor.since.astimezone(UTC).isoformat()},
        "until": {"S": cursor.until.astimezone(UTC).isoformat()},
        "query_locator": {"S": cursor.query_locator} if cursor.query_locator else {"NULL": True},
    }
    values |= {name: {"N": str(getattr(cursor, name))} for name in _CURSOR_COUNTS}
    return values


def sweep_cursor_of(item: Mapping[str, Any] | None) -> SweepCursor | None:
    """The cursor kept in a sweep item, None when the item holds only a watermark (or does not exist)."""
    if not item or "until" not in item:
        return None
    locator = item.get("query_locator", {}).get("S")
    return SweepCursor(
        object_type=item["object_type"]["S"],
        since=datetime.fromisoformat(item["since"]["S"]),
        until=datetime.fromisoformat(item["until"]["S"]),
        query_locator=locator or None,
        **{name: int(item.get(name, {}).get("N", "0")) for name in _CURSOR_COUNTS},
    )


BACKFILL_INDEX_KEY: Final = "BACKFILL#INDEX"


def backfill_key(run_id: str) -> str:
    return f"BACKFILL#{run_id}"


def _when(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _when_of(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def backfill_item(run: BackfillRun) -> dict[str, Any]:
    """A backfill run as its ``BACKFILL#<run id>`` item."""
    plain: dict[str, Any] = {
        "pk": backfill_key(run.run_id),
        "objects": list(run.objects),
        "since": _when(run.since),
        "until": _when(run.until),
        "created_at": _when(run.created_at),
        "status": run.status.value,
        "reason": run.reason,
        "updated_at": _when(run.updated_at),
        "steps": run.steps,
        "progress": [
            {
                "object_type": p.object_type,
                "pages": p.pages,
                "read": p.read,
                "queued": p.queued,
                "malformed": p.malformed,
                "started_at": _when(p.started_at),
                "finished_at": _when(p.finished_at),
            }
            for p in run.progress
        ],
    }
    return to_item(plain)


def backfill_of(item: Mapping[str, Any]) -> BackfillRun:
    """The run a ``backfill_item`` holds; raises KeyError or ValueError for an item that is not one."""
    plain = plain_item(item)
    return BackfillRun(
        run_id=str(plain["pk"]).removeprefix("BACKFILL#"),
        objects=tuple(plain["objects"]),
        since=datetime.fromisoformat(plain["since"]),
        until=datetime.fromisoformat(plain["until"]),
        created_at=datetime.fromisoformat(plain["created_at"]),
        status=BackfillStatus(plain["status"]),
        reason=str(plain.get("reason", "")),
        updated_at=_when_of(plain.get("updated_at")),
        steps=int(plain.get("steps", 0)),
        progress=tuple(
            ObjectProgress(
                object_type=p["object_type"],
                pages=int(p["pages"]),
                read=int(p["read"]),
                queued=int(p["queued"]),
                malformed=int(p["malformed"]),
                started_at=_when_of(p.get("started_at")),
                finished_at=_when_of(p.get("finished_at")),
            )
            for p in plain.get("progress", [])
        ),
    )


def minute_pk(minute: datetime) -> str:
    return f"MINUTE#{minute_key(minute)}"


def failure_sk(object_type: str, record_id: str, version: str) -> str:
    return f"{object_type}#{record_id}#{version}"


# -- the API usage item --------------------------------------------------------------------------------------
def api_usage_item(usage: ApiUsage) -> dict[str, AttributeValueTypeDef]:
    return {
        "pk": {"S": API_USAGE_KEY},
        "used": {"N": str(usage.used)},
        "limit": {"N": str(usage.limit)},
        "percent": {"N": f"{usage.percent:.2f}"},
        "observed_at": {"S": usage.observed_at.isoformat(timespec="milliseconds")},
    }


def api_usage_of(item: Mapping[str, Any]) -> ApiUsage:
    """The ``ORG#API_USAGE`` item as an ApiUsage; raises ValueError when it is malformed.

    The percentage is computed from ``used`` and ``limit`` by ApiUsage's one rule, never read from the stored copy.
    """
    try:
        used, limit = int(item["used"]["N"]), int(item["limit"]["N"])
        observed_at = datetime.fromisoformat(item["observed_at"]["S"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"API usage item lacks {exc}") from exc
    if observed_at.tzinfo is None:
        observed_at = observed_at.replace(tzinfo=UTC)
    return ApiUsage(used=used, limit=limit, observed_at=observed_at)


# -- converting items ----------------------------------------------------------------------------------------
@cache
def _codec() -> tuple[TypeSerializer, TypeDeserializer]:
    # Imported on first use: ``boto3.dynamodb.types`` loads boto3 (and s3transfer), which only the adapters need;
    # the metrics service imports this module for ``minute_key`` alone.
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer  # noqa: PLC0415

    return TypeSerializer(), TypeDeserializer()


def _to_dynamodb(value: Any) -> Any:
    # boto3's serializer refuses floats (they are inexact); DynamoDB numbers are decimals.
    if isinstance(value, float):
        return Decimal(str(round(value, 4)))
    if isinstance(value, list):
        return [_to_dynamodb(v) for v in value]
    return value


def _from_dynamodb(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_from_dynamodb(v) for v in value]
    return value


def to_item(plain: Mapping[str, Any]) -> dict[str, Any]:
    """A plain mapping (str, int, float, bool, lists) as a DynamoDB item; floats are rounded to 4 places."""
    serializer, _ = _codec()
    return {k: serializer.serialize(_to_dynamodb(v)) for k, v in plain.items()}


def plain_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain Python, numbers as int or float (so JSON output stays readable)."""
    _, deserializer = _codec()
    return {k: _from_dynamodb(deserializer.deserialize(v)) for k, v in item.items()}


def breaker_item(state: BreakerState) -> dict[str, AttributeValueTypeDef]:
    """The ``ORG#BREAKER`` item of a breaker state (``failures`` is kept by ``count_failure``, not here)."""
    item: dict[str, AttributeValueTypeDef] = {
        "pk": {"S": BREAKER_KEY},
        "state": {"S": "open" if state.is_open else "closed"},
        "message": {"S": state.message},
        "by": {"S": state.by},
        "failures": {"N": str(state.failures)},
    }
    if state.reason is not None:
        item["reason"] = {"S": state.reason.value}
    for name, value in (("since", state.since), ("updated_at", state.updated_at)):
        if value is not None:
            item[name] = {"S": value.astimezone(UTC).isoformat(timespec="seconds")}
    return item


def breaker_of(item: Mapping[str, Any] | None) -> BreakerState:
    """The breaker state of an ``ORG#BREAKER`` item; no item (or no ``state``) is a closed breaker.

    An unknown reason on an open item reads as MANUAL: only an operator then closes it, never the probe.
    """
    if not item or "state" not in item:
        failures = int(item["failures"]["N"]) if item and "failures" in item else 0
        return BreakerState(is_open=False, failures=failures)

    def text(name: str) -> str:
        return str(item.get(name, {}).get("S", ""))

    def when(name: str) -> datetime | None:
        value = text(name)
        if not value:
            return None
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    is_open = text("state") == "open"
    reason: BreakerReason | None = None
    if text("reason"):
        try:
            reason = BreakerReason(text("reason"))
        except ValueError:
            reason = BreakerReason.MANUAL
    elif is_open:
        reason = BreakerReason.MANUAL
    return BreakerState(
        is_open=is_open,
        reason=reason,
        message=text("message"),
        since=when("since"),
        by=text("by"),
        updated_at=when("updated_at"),
        failures=int(item.get("failures", {}).get("N", "0")),
    )
