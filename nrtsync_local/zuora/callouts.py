"""The Zuora stand-in sends callouts as Zuora does: when a record changes, the active event triggers of its object
whose condition holds for the change type raise an event, and each active notification definition of that event
sends its callout.

What it copies from Zuora's docs (docs.zuora.com, "Events and Notifications"; developer.zuora.com, "Callout
Templates"), the behaviour that hurts included:
- the body is the callout's ``customRequestBody`` with its data source merge fields (``{{DataSource.Account.Id}}``,
  the base object's or a joined parent's, found through ``<Parent>Id``) rendered from the record: dates by the
  tenant's date format, date-times in the tenant's time zone (Pacific by default), and an empty value rendered as
  ``null`` when "For custom event triggered callouts, send empty strings as null" is on ("Configure callout
  settings"; on by default here, as Zuora recommends);
- Basic authentication is not preemptive: the first request carries no credentials and they are sent after a 401
  with a ``WWW-Authenticate: Basic`` challenge, unless the callout (or the tenant setting) says preemptive;
- ``Zuora-Notification-Id`` is the same on every retry of one notification, ``Zuora-Request-Id`` new on each attempt;
- only a 200 is a delivery; "Confirm success by parsing response content" (off by default) also wants
  ``"success": true`` in a JSON body;
- retried only on 1xx, 403, 408, 429, 5xx and no answer (never on 400, 404, 413, 415, 422...), up to ``retries``
  more times (3 by default, 5 at most), ``retry_interval_seconds`` apart (30 minutes by default; the local stack
  shortens it);
- 10 s to connect and 15 s to read the answer; only ``https://`` URLs are called.

The control API (``/__standin/callouts``) changes these settings, arms faults on the delivery path and reads the
delivery history (one row per attempt, like Zuora's "Notification History - Callout").

Faults (``{"faults": [{"record_id": ..., "fault": ..., "attempts": N}]}``) apply to the callouts of the record's
*next* change, so a callout of an earlier change still on its way is not the one hit. Each models an attempt Zuora
gets no answer to, which it retries as it does a 5xx, with the same ``Zuora-Notification-Id`` and a new
``Zuora-Request-Id`` ("Callout notification overview": "for example, the retrial when connection timeout"):
- ``no_answer``: the first ``attempts`` attempts never reach the endpoint (the connection times out), so Zuora
  retries ``retry_interval_seconds`` later; as many attempts as Zuora makes (``retries`` + 1) is a callout Zuora
  gives up on;
- ``answer_lost``: the endpoint gets the request and answers, but the answer never reaches Zuora (its read times
  out), so Zuora sends the same notification again: a duplicate the endpoint has already stored.
The stand-in does not wait out Zuora's 10 s/15 s timeouts for these: the attempt is recorded as unanswered at once.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import requests

from nrtsync.domain.zuora_dates import parse_zuora_datetime
from nrtsync_local.zuora.describe import field_types
from nrtsync_local.zuora.notifications import Notifications
from nrtsync_local.zuora.state import ZuoraState

MAX_RETRIES = 5
# Callouts in flight at once. Zuora delivers notifications asynchronously and publishes no concurrency figure
# ("Callout notification overview"); a modest two, so that local latency figures never flatter Zuora's side.
SENDER_THREADS = 2
FAULTS = ("no_answer", "answer_lost")
_MERGE = re.compile(r"\{\{\s*DataSource\.([A-Za-z][A-Za-z0-9_]*)\.([A-Za-z][A-Za-z0-9_]*)\s*\}\}")
_CONDITION = re.compile(r"changeType\s*==\s*'(INSERT|UPDATE|DELETE)'")
_RETRIED = frozenset({403, 408, 429})


@dataclass
class CalloutSettings:
    """The tenant's callout settings and Zuora's delivery constants (each settable through the control API)."""

    empty_as_null: bool = True
    success_parsing: bool = False
    preemptive: bool | None = None
    """None: as each callout's ``calloutAuth.preemptive`` says."""
    retries: int = 3
    retry_interval_seconds: float = 1800.0
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 15.0
    date_format: str = "%Y-%m-%d"
    time_zone: str = "America/Los_Angeles"
    ca_file: str | None = None
    """The CA the callout URL's certificate is checked against (the local front's); None: the public roots."""

    def update(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if name not in self.__dataclass_fields__:
                raise ValueError(f"unknown callout setting {name!r}")
            setattr(self, name, value)
        self.retries = max(0, min(MAX_RETRIES, int(self.retries)))


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    notification_id: str = field(compare=False)
    definition: dict[str, Any] = field(compare=False)
    object_type: str = field(compare=False)
    change: str = field(compare=False)
    record: dict[str, Any] = field(compare=False)
    body: str = field(default="", compare=False)
    url: str = field(default="", compare=False)
    error: str = field(default="", compare=False)
    attempt: int = field(default=0, compare=False)
    fault: str = field(default="", compare=False)
    faulty_attempts: int = field(default=0, compare=False)
    """How many of the next attempts ``fault`` still hits."""


def condition_holds(condition: str, change: str) -> bool:
    """The trigger conditions ``zuora setup`` writes: ``changeType == '...'`` terms joined by ``||``. Anything else
    is a condition the stand-in cannot evaluate, and it fires nothing (so a test notices)."""
    terms = [term.strip().strip("()").strip() for term in condition.split("||")]
    matches = [_CONDITION.fullmatch(term) for term in terms]
    return all(matches) and any(m is not None and m.group(1) == change for m in matches)


def parse_faults(faults: object) -> list[tuple[str, str, int]]:
    """(record id, fault, attempts) of the control API's ``faults``; a ValueError or TypeError names what is wrong."""
    if not isinstance(faults, list):
        raise TypeError("faults: a list of {record_id, fault, attempts}")
    parsed = []
    for item in faults:
        if not isinstance(item, dict) or not item.get("record_id") or item.get("fault") not in FAULTS:
            raise ValueError(f"a fault needs record_id and fault (one of {', '.join(FAULTS)}): {item!r}")
        attempts = int(item.get("attempts", 1))
        if attempts < 1:
            raise ValueError(f"a fault's attempts must be at least 1: {item!r}")
        parsed.append((str(item["record_id"]), str(item["fault"]), attempts))
    return parsed


def retried(status: int | None) -> bool:
    """Whether Zuora tries a callout again after this answer (None: no answer at all)."""
    return status is None or status < 200 or status in _RETRIED or status >= 500


class CalloutSender:
    """Raises and delivers the stand-in's notifications on worker threads; ``changed`` is the state's hook."""

    def __init__(
        self,
        state: ZuoraState,
        notifications: Notifications,
        settings: CalloutSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        workers: int = SENDER_THREADS,
    ) -> None:
        self.state = state
        self.notifications = notifications
        self.settings = settings or CalloutSettings()
        self.history: list[dict[str, Any]] = []
        self._clock = clock
        self._queue: list[_Delivery] = []
        self._in_flight = 0
        self._armed: dict[str, list[tuple[str, int]]] = {}
        """record id -> the faults of its next changes' callouts, oldest first: (fault, attempts)."""
        self._seq = itertools.count()
        self._ready = threading.Condition()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"zuora-callouts-{i}", daemon=True) for i in range(workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify_all()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=20)

    def control(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """``GET``: the settings, the history, the pending count (deliveries waiting or being attempted) and the
        armed faults; ``POST``: change settings, arm faults (``faults``: see the module doc)."""
        with self._ready:
            if method == "POST":
                settings = dict(body)
                faults = parse_faults(settings.pop("faults", []))
                self.settings.update(settings)
                for record_id, fault, attempts in faults:
                    self._armed.setdefault(record_id, []).append((fault, attempts))
            return {
                "settings": asdict(self.settings),
                "history": list(self.history),
                "pending": len(self._queue) + self._in_flight,
                "armed": {record_id: len(faults) for record_id, faults in self._armed.items() if faults},
            }

    def changed(self, object_type: str, change: str, record: dict[str, Any]) -> None:
        """Called by the state (under its lock) for every stored change: queues the notifications it raises, their
        content rendered now, from the record and its parents as they are at the change."""
        with self.notifications.lock:
            events = {
                str(trigger["eventType"]["name"])
                for trigger in self.notifications.triggers.values()
                if trigger.get("active")
                and trigger.get("baseObject") == object_type
                and condition_holds(str(trigger.get("condition", "")), change)
            }
            definitions = [
                json.loads(json.dumps(d))
                for d in self.notifications.definitions.values()
                if d.get("eventTypeName") in events and d.get("active") and d.get("calloutActive")
                if isinstance(d.get("callout"), dict) and d["callout"].get("active", True)
            ]
        with self._ready:
            # The fault armed for this record's next change is this change's, raised or not: a change that raises
            # no callout must not pass it on to a later one.
            armed = self._armed.get(str(record.get("Id")))
            fault, attempts = armed.pop(0) if armed else ("", 0)
            for definition in definitions:
                delivery = _Delivery(
                    self._clock(), next(self._seq), uuid.uuid4().hex, definition, object_type, change, dict(record)
                )
                delivery.fault, delivery.faulty_attempts = fault, attempts
                callout = definition["callout"]
                try:
                    delivery.body = self.render(callout.get("customRequestBody") or "{}", delivery, quoted=True)
                    delivery.url = self.render(str(callout.get("calloutBaseurl", "")), delivery, quoted=False)
                except ValueError as exc:  # a value the tenant's formats cannot render
                    delivery.error = str(exc)
                heapq.heappush(self._queue, delivery)
            self._ready.notify_all()

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._stopping and (not self._queue or self._queue[0].due > self._clock()):
                    wait = None if not self._queue else max(0.0, self._queue[0].due - self._clock())
                    self._ready.wait(timeout=wait)
                if self._stopping:
                    return
                delivery = heapq.heappop(self._queue)
                self._in_flight += 1
                settings = CalloutSettings(**asdict(self.settings))
            try:
                self._deliver(delivery, settings)
            finally:
                with self._ready:
                    self._in_flight -= 1
                    self._ready.notify_all()

    def _deliver(self, delivery: _Delivery, settings: CalloutSettings) -> None:
        callout = delivery.definition["callout"]
        delivery.attempt += 1
        request_id = uuid.uuid4().hex
        status: int | None = None
        error, delivered, challenged = delivery.error, False, False
        fault = delivery.fault if delivery.faulty_attempts > 0 else ""
        delivery.faulty_attempts -= 1 if fault else 0
        answered: int | None = None
        if not error and fault != "no_answer":
            try:
                status, text, challenged = self._send(
                    callout, delivery.url, delivery.body, (delivery.notification_id, request_id), settings
                )
                delivered = status == 200 and (not settings.success_parsing or _says_success(text))
            except ValueError as exc:  # a URL Zuora would never call
                error = str(exc)
        if fault == "answer_lost" and not error:
            # The endpoint answered (``answered``); Zuora saw nothing.
            answered, status, delivered = status, None, False
        again = not delivered and not error and retried(status if status != 200 else 500)
        again = again and delivery.attempt <= settings.retries
        with self._ready:
            self.history.append(
                {
                    "notification_id": delivery.notification_id,
                    "request_id": request_id,
                    "definition": delivery.definition.get("name"),
                    "object_type": delivery.object_type,
                    "record_id": delivery.record.get("Id"),
                    "change": delivery.change,
                    "updated_date": delivery.record.get("UpdatedDate"),
                    "attempt": delivery.attempt,
                    "attempt_limit": settings.retries + 1,
                    "status": status,
                    "challenged": challenged,
                    "delivered": delivered,
                    "final": not again,
                    "fault": fault or None,
                    "endpoint_status": answered,
                    "error": error,
                }
            )
            if again:
                delivery.due = self._clock() + settings.retry_interval_seconds
                delivery.seq = next(self._seq)
                heapq.heappush(self._queue, delivery)
                self._ready.notify_all()

    @staticmethod
    def _send(
        callout: dict[str, Any], url: str, body: str, ids: tuple[str, str], s: CalloutSettings
    ) -> tuple[int | None, str, bool]:
        """(status or None for no answer, body, whether a 401 challenge came first) of one attempt; ``ids``: the
        notification's and the request's."""
        notification_id, request_id = ids
        if not url.startswith("https://"):
            raise ValueError(f"Zuora calls only https URLs, not {url!r}")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Zuora-Notification-Id": notification_id,
            "Zuora-Request-Id": request_id,
        }
        auth = callout.get("calloutAuth") if callout.get("requiredAuth") else None
        basic = None
        if isinstance(auth, dict):
            token = base64.b64encode(f"{auth.get('username', '')}:{auth.get('password', '')}".encode()).decode()
            basic = f"Basic {token}"
        preemptive = (
            s.preemptive if s.preemptive is not None else bool(isinstance(auth, dict) and auth.get("preemptive"))
        )
        method = str(callout.get("httpMethod", "POST"))
        with requests.Session() as session:
            session.trust_env = False
            session.verify = s.ca_file or True
            timeout = (s.connect_timeout_seconds, s.read_timeout_seconds)
            try:
                first = {"Authorization": basic} if basic and preemptive else {}
                response = session.request(method, url, data=body.encode(), headers=headers | first, timeout=timeout)
                challenge = response.headers.get("WWW-Authenticate", "").lower().startswith("basic")
                challenged = response.status_code == 401 and challenge
                if challenged and basic and not preemptive:
                    response = session.request(
                        method, url, data=body.encode(), headers=headers | {"Authorization": basic}, timeout=timeout
                    )
            except requests.RequestException:
                return None, "", False
            return response.status_code, response.text, challenged

    def render(self, template: str, delivery: _Delivery, *, quoted: bool) -> str:
        """``template`` with its data source merge fields replaced; ``quoted``: the value goes inside a JSON string.
        Called under the state's lock (``changed``)."""
        settings = self.settings
        types = field_types()
        zone = ZoneInfo(settings.time_zone)

        def value(match: re.Match[str]) -> str:
            object_type, name = match.group(1), match.group(2)
            source = delivery.record if object_type == delivery.object_type else self._joined(delivery, object_type)
            text = _text(source.get(name), types.get(object_type, {}).get(name), settings, zone)
            if text == "":
                text = "null" if settings.empty_as_null else ""
            return json.dumps(text)[1:-1] if quoted else text

        return _MERGE.sub(value, template)

    def _joined(self, delivery: _Delivery, object_type: str) -> dict[str, Any]:
        parent_id = delivery.record.get(f"{object_type}Id")
        found = self.state.records.get(object_type, {}).get(str(parent_id))
        return dict(found) if found else {}


def _text(value: Any, field_type: str | None, settings: CalloutSettings, zone: ZoneInfo) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if field_type == "date":
        return date.fromisoformat(str(value)[:10]).strftime(settings.date_format)
    if field_type == "datetime":
        moment = parse_zuora_datetime(str(value))
        moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=ZoneInfo("UTC"))
        return _zuora_datetime(moment.astimezone(zone))
    return str(value)


def _zuora_datetime(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _says_success(text: str) -> bool:
    try:
        answer = json.loads(text)
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get("success") is True
