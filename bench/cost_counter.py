"""Counting what the pipeline really asks of AWS while it runs: every boto3 call, the DynamoDB units it consumes,
the log bytes the functions write and how long each handler runs.

moto bills nothing and answers no ``ConsumedCapacity`` worth the name, so the units are computed here from the
items themselves, by DynamoDB's rules ("Item sizes and formats" and "Read/write capacity mode" pages of the
Amazon DynamoDB Developer Guide):

- an item's size is the sum, per attribute, of the name's UTF-8 length and the value's size: a string its
  UTF-8 length, a number about one byte per two significant digits plus one, binary its length, a boolean or
  null one byte, a list or map 3 bytes plus its elements plus one byte per element;
- a write (PutItem, UpdateItem, DeleteItem, each put or delete of a BatchWriteItem) costs one write request
  unit per started 1 KB of the larger of the item's size before and after; a conditional write that fails
  still costs what it would have written; a transactional write costs twice;
- a strongly consistent read costs one read request unit per started 4 KB, an eventually consistent one half
  that; a read of a missing item still costs the minimum; a Query or Scan rounds the total size of the items
  it read, not each item.

The hooks are botocore's own events, ``before-parameter-build`` (it carries the caller's parameters, where
``before-call`` has only the serialised request) and ``after-call`` (also for an answer that is an error, such
as a failed condition), registered on every client made while counting (``AwsCallCounter.install``):
Powertools' SecretsProvider builds its boto3 client from its own ``boto3.Session``, so hooks on the default
session alone would miss the Secrets Manager calls.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import botocore.session

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
ESM = "SqsEventSource"  # calls the SQS event source mapping (Lambda's poller) makes, not a function
OTHER = "other"

StoredItem = Callable[[str, Mapping[str, Any]], Mapping[str, Any] | None]


def value_size(value: Mapping[str, Any]) -> int:  # noqa: PLR0911 - one answer per DynamoDB type
    """Bytes one attribute value (DynamoDB JSON, e.g. ``{"S": "abc"}``) adds to an item's size."""
    kind, content = next(iter(value.items()))
    if kind == "S":
        return len(str(content).encode())
    if kind == "N":
        digits = str(Decimal(str(content)).normalize()).lstrip("-").replace(".", "").lstrip("0").split("E")[0]
        return max(1, math.ceil(len(digits) / 2)) + 1
    if kind == "B":
        return len(content if isinstance(content, bytes) else str(content).encode())
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in content)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in content.items())
    if kind == "SS":
        return sum(len(s.encode()) for s in content)
    if kind == "NS":
        return sum(value_size({"N": n}) for n in content)
    if kind == "BS":
        return sum(len(b) for b in content)
    raise ValueError(f"not a DynamoDB attribute value: {value!r}")


def item_size(item: Mapping[str, Mapping[str, Any]] | None) -> int:
    """An item's size in bytes by DynamoDB's rules (0 for no item)."""
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size_before: int, size_after: int) -> int:
    """Write request units of one item write: per started KB of the larger size, at least one."""
    return max(1, math.ceil(max(size_before, size_after) / WRITE_UNIT_BYTES))


def read_units(size: int, *, consistent: bool) -> float:
    """Read request units of one read of ``size`` bytes: per started 4 KB, at least one; half if eventual."""
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


def moto_stored_item(region: str) -> StoredItem:
    """The item as moto (in this process) stores it, in DynamoDB JSON; for the size before and after a write."""
    from moto.core.models import DEFAULT_ACCOUNT_ID  # noqa: PLC0415 - bench-only dependency, loaded on use
    from moto.dynamodb.models import dynamodb_backends  # noqa: PLC0415

    def stored(table: str, key: Mapping[str, Any]) -> Mapping[str, Any] | None:
        try:
            item = dynamodb_backends[DEFAULT_ACCOUNT_ID][region].get_item(table, dict(key))
        except Exception:  # noqa: BLE001 - a table moto does not know: count the write at its minimum
            return None
        return None if item is None else item.to_json()["Attributes"]

    return stored


@dataclass
class FunctionUsage:
    """What one function (or the event source) made AWS do."""

    calls: Counter[str] = field(default_factory=Counter)  # "sqs.SendMessage" -> requests
    wru: float = 0.0
    rru: float = 0.0
    sqs_messages_received: int = 0
    sqs_empty_receives: int = 0
    metric_data: int = 0  # PutMetricData datums

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": dict(sorted(self.calls.items())),
            "dynamodb_wru": round(self.wru, 2),
            "dynamodb_rru": round(self.rru, 2),
            "sqs_messages_received": self.sqs_messages_received,
            "sqs_empty_receives": self.sqs_empty_receives,
            "metric_data": self.metric_data,
        }


@dataclass
class Invocation:
    function: str
    seconds: float
    records: int  # SQS records in the event (0 for other events)


class CallerTracker:
    """Which function a call or a log line belongs to.

    The local stack runs one invocation at a time (one lock), but the sync service spreads its DynamoDB calls
    over a thread pool, and the SQS poller receives in its own thread while an ingest call runs. So: the
    invocation running in this very thread, else the poller's thread is the event source, else the
    invocation running now (a pool thread of it).
    """

    def __init__(self, poller_thread: str = "sync-poller") -> None:
        self._local = threading.local()
        self._current: str | None = None
        self._poller_thread = poller_thread

    @contextlib.contextmanager
    def running(self, function: str) -> Iterator[None]:
        previous_local = getattr(self._local, "function", None)
        self._local.function = function
        self._current = function
        try:
            yield
        finally:
            self._local.function = previous_local
            self._current = None

    def caller(self) -> str:
        own = getattr(self._local, "function", None)
        if own is not None:
            return str(own)
        if threading.current_thread().name == self._poller_thread:
            return ESM
        return self._current or OTHER


class AwsCallCounter:
    """Counts every AWS request made by clients created while installed, per caller, and its DynamoDB units.

    ``paused()`` leaves out calls the measuring code itself makes in the current thread (reading the results).
    """

    def __init__(self, tracker: CallerTracker | None = None, stored_item: StoredItem | None = None) -> None:
        self.tracker = tracker or CallerTracker()
        self._stored_item = stored_item
        self._lock = threading.Lock()
        self._paused = threading.local()
        self.usage: dict[str, FunctionUsage] = defaultdict(FunctionUsage)
        # Every (metric name, dimensions) PutMetricData published: each is a custom metric on the bill. Kept
        # across reset(): a metric costs its month whichever phase first published it.
        self.metric_streams: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        self._original_create_client: Any = None

    # --- installing ----------------------------------------------------------------------------------------

    def install(self) -> None:
        """Every botocore client created from now on gets the hooks (whichever session makes it)."""
        if self._original_create_client is not None:
            return
        original = botocore.session.Session.create_client
        counter = self

        def create_client(session: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            counter.attach(client)
            return client

        self._original_create_client = original
        botocore.session.Session.create_client = create_client  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        if self._original_create_client is not None:
            botocore.session.Session.create_client = self._original_create_client  # type: ignore[method-assign]
            self._original_create_client = None

    def attach(self, client: Any) -> None:
        """The hooks on one client (also for a client made before ``install``)."""
        # before-parameter-build carries the caller's own parameters (before-call only the serialised body);
        # both it and after-call share one context dict per call.
        client.meta.events.register("before-parameter-build", self._before)
        client.meta.events.register("after-call", self._after)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self._paused.on = True
        try:
            yield
        finally:
            self._paused.on = False

    def reset(self) -> None:
        with self._lock:
            self.usage = defaultdict(FunctionUsage)

    # --- the hooks -----------------------------------------------------------------------------------------

    def _before(self, params: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if getattr(self._paused, "on", False):
            return
        context["nrtsync_cost_caller"] = self.tracker.caller()
        context["nrtsync_cost_request"] = params
        if model.service_model.service_name == "dynamodb" and model.name in ("PutItem", "UpdateItem", "DeleteItem"):
            key = params.get("Key") or {name: params["Item"][name] for name in ("pk", "sk") if name in params["Item"]}
            context["nrtsync_cost_before"] = self._stored_size(params["TableName"], key)

    def _after(self, parsed: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        caller = context.get("nrtsync_cost_caller")
        if caller is None:
            return
        service = model.service_model.service_name
        request: Mapping[str, Any] = context.get("nrtsync_cost_request") or {}
        wru, rru = 0.0, 0.0
        if service == "dynamodb":
            wru, rru = self._dynamodb_units(model.name, request, parsed, int(context.get("nrtsync_cost_before", 0)))
        with self._lock:
            usage = self.usage[caller]
            usage.calls[f"{service}.{model.name}"] += 1
            usage.wru += wru
            usage.rru += rru
            if service == "sqs" and model.name == "ReceiveMessage":
                received = len(parsed.get("Messages", []))
                usage.sqs_messages_received += received
                usage.sqs_empty_receives += received == 0
            if service == "cloudwatch" and model.name == "PutMetricData":
                usage.metric_data += len(request.get("MetricData", []))
                for datum in request.get("MetricData", []):
                    dims = tuple(sorted((d["Name"], d["Value"]) for d in datum.get("Dimensions", [])))
                    self.metric_streams.add((datum["MetricName"], dims))

    # --- DynamoDB units ------------------------------------------------------------------------------------

    def _stored_size(self, table: str, key: Mapping[str, Any]) -> int:
        if self._stored_item is None:
            return 0
        return item_size(self._stored_item(table, key))

    def _dynamodb_units(  # noqa: PLR0911 - one answer per DynamoDB operation
        self, operation: str, request: Mapping[str, Any], parsed: Mapping[str, Any], size_before: int
    ) -> tuple[float, float]:
        consistent = bool(request.get("ConsistentRead"))
        if operation == "PutItem":
            return float(write_units(size_before, item_size(request["Item"]))), 0.0
        if operation in ("UpdateItem", "DeleteItem"):
            # A failed condition costs too: the size before stands for what would have been written.
            after = self._stored_size(request["TableName"], request["Key"])
            return float(write_units(size_before, after)), 0.0
        if operation == "BatchWriteItem":
            unprocessed = {t: len(r) for t, r in (parsed.get("UnprocessedItems") or {}).items()}
            units = 0
            for table, requests in request["RequestItems"].items():
                for r in requests[: len(requests) - unprocessed.get(table, 0)]:
                    put = r.get("PutRequest")
                    units += write_units(0, item_size(put["Item"])) if put else 1
            return float(units), 0.0
        if operation == "TransactWriteItems":
            items = [i.get("Put", {}).get("Item") for i in request["TransactItems"]]
            return float(sum(2 * write_units(0, item_size(i)) for i in items)), 0.0
        if operation == "GetItem":
            return 0.0, read_units(item_size(parsed.get("Item")), consistent=consistent)
        if operation == "BatchGetItem":
            rru = 0.0
            for table, items in (parsed.get("Responses") or {}).items():
                table_consistent = bool(request["RequestItems"].get(table, {}).get("ConsistentRead"))
                rru += sum(read_units(item_size(i), consistent=table_consistent) for i in items)
            return 0.0, rru
        if operation in ("Query", "Scan"):
            return 0.0, read_units(sum(item_size(i) for i in parsed.get("Items", [])), consistent=consistent)
        return 0.0, 0.0

    # --- reading the totals --------------------------------------------------------------------------------

    def totals(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {caller: usage.as_dict() for caller, usage in sorted(self.usage.items())}


class LogSink:
    """A text stream that counts the bytes and lines written to it, per caller, and keeps none of them."""

    def __init__(self, tracker: CallerTracker) -> None:
        self._tracker = tracker
        self._lock = threading.Lock()
        self.bytes: Counter[str] = Counter()
        self.lines: Counter[str] = Counter()

    def write(self, text: str) -> int:
        if text:
            caller = self._tracker.caller()
            with self._lock:
                self.bytes[caller] += len(text.encode())
                self.lines[caller] += text.count("\n")
        return len(text)

    def flush(self) -> None:
        return None

    def reset(self) -> None:
        with self._lock:
            self.bytes.clear()
            self.lines.clear()


class InvocationTimer:
    """Wraps handlers: each invocation's wall time, and the caller marked while it runs."""

    def __init__(self, tracker: CallerTracker) -> None:
        self._tracker = tracker
        self._lock = threading.Lock()
        self.invocations: list[Invocation] = []

    def timed(self, function: str, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def run(event: Any, context: Any) -> Any:
            records = len(event.get("Records", [])) if isinstance(event, dict) else 0
            started = time.perf_counter()
            try:
                with self._tracker.running(function):
                    return handler(event, context)
            finally:
                seconds = time.perf_counter() - started
                with self._lock:
                    self.invocations.append(Invocation(function, seconds, records))

        return run

    def reset(self) -> None:
        with self._lock:
            self.invocations = []
