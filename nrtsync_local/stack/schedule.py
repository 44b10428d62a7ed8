"""The metrics function's EventBridge schedule: the template's ``MetricsSchedule`` expression, its interval, the
scheduled event EventBridge sends, and the loop that invokes the function on it."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from nrtsync_local.gateway.rules import LOCAL_ACCOUNT_ID
from nrtsync_local.stack.spec import EVENTS_DIR, LOGGER_NAME, LocalDeploymentError
from nrtsync_local.template import apply_conditions, parameter_defaults, resource

log = logging.getLogger(LOGGER_NAME)

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(second|seconds|minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_CRON_FALLBACK_SECONDS = 60.0


def schedule_seconds(expression: str) -> float | None:
    """Seconds between runs of an EventBridge ``rate(...)`` expression; None for ``cron(...)``.

    ``second(s)`` is accepted too (EventBridge has no such unit), so that a local run can be faster.
    """
    match = _RATE.match(expression.strip())
    if match is None:
        if expression.strip().startswith("cron("):
            return None
        raise LocalDeploymentError(f"not a schedule expression: {expression!r}")
    amount, unit = int(match.group(1)), match.group(2).rstrip("s")
    if amount < 1:
        raise LocalDeploymentError(f"a rate must be at least 1: {expression!r}")
    return float(amount * _UNIT_SECONDS[unit])


def _schedule_event(template: Mapping[str, Any], logical_id: str) -> Mapping[str, Any]:
    """The function's ``Schedule`` event's properties, with the template's conditions applied (its defaults)."""
    events = resource(template, logical_id, "AWS::Serverless::Function").get("Properties", {}).get("Events", {})
    for event in events.values():
        if event.get("Type") == "Schedule":
            properties: Mapping[str, Any] = apply_conditions(event["Properties"], template)
            return properties
    raise LocalDeploymentError(f"{logical_id} has no Schedule event in the template")


def schedule_expression(template: Mapping[str, Any], logical_id: str) -> str:
    """The expression of the function's ``Schedule`` event (a ``Ref`` resolved to the parameter's default)."""
    schedule = _schedule_event(template, logical_id)["Schedule"]
    if isinstance(schedule, Mapping) and "Ref" in schedule:
        return parameter_defaults(template)[str(schedule["Ref"])]
    return str(schedule)


def schedule_enabled(template: Mapping[str, Any], logical_id: str) -> bool:
    """Whether the function's schedule rule is enabled (``State``, or SAM's older ``Enabled``; both default on)."""
    properties = _schedule_event(template, logical_id)
    return str(properties.get("State", "ENABLED")).upper() == "ENABLED" and properties.get("Enabled", True) is not False


def schedule_interval(template: Mapping[str, Any], logical_id: str, override: float | None) -> float:
    """Seconds between runs: ``override``, else the function's schedule (a cron expression runs every 60 s)."""
    expression = schedule_expression(template, logical_id)
    interval = override or schedule_seconds(expression)
    if interval is None:
        log.warning("MetricsSchedule %s is a cron expression; locally the metrics run every 60 s", expression)
        interval = _CRON_FALLBACK_SECONDS
    return interval


def optional_schedule_interval(
    template: Mapping[str, Any], logical_id: str, override: float | Literal["off"] | None
) -> float | None:
    """Seconds between runs of a function whose schedule can be off (the reconcile function), or None: not run
    on a schedule. ``override``: ``"off"`` (or 0) or seconds; None follows the template, whose rule may be
    disabled (``ReconcileSchedule=off``) or a cron expression (not run locally: its times are the deployment's)."""
    if override is not None:
        return None if override in ("off", 0) else float(override)
    if not schedule_enabled(template, logical_id):
        return None
    expression = schedule_expression(template, logical_id)
    interval = schedule_seconds(expression)
    if interval is None:
        log.warning("%s's schedule %s is a cron expression; locally it runs only when asked", logical_id, expression)
    return interval


def run_schedule(stop: threading.Event, interval: float, invoke: Callable[[], object]) -> None:
    """Invokes ``invoke`` every ``interval`` seconds until ``stop`` is set; a failed run is the handler's to log."""
    # EventBridge's first run of a rate rule comes one interval after the rule is created.
    while not stop.wait(interval):
        with contextlib.suppress(Exception):
            invoke()


def scheduled_event(*, region: str, rule: str, now: datetime | None = None) -> dict[str, Any]:
    """events/scheduled_metrics.json with a fresh id and time, as EventBridge sends it to the metrics function."""
    event: dict[str, Any] = json.loads((EVENTS_DIR / "scheduled_metrics.json").read_text(encoding="utf-8"))
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    event |= {
        "id": str(uuid.uuid4()),
        "time": moment.isoformat().replace("+00:00", "Z"),
        "region": region,
        "account": LOCAL_ACCOUNT_ID,
        "resources": [f"arn:aws:events:{region}:{LOCAL_ACCOUNT_ID}:rule/{rule}"],
    }
    return event
