"""What runs beside the handlers: the API Gateway front (its own server thread), the SQS event source poller's
thread, and the daemon threads the stack spawns, stopped together through one event."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from nrtsync_local.aws import LocalResources
from nrtsync_local.gateway.rules import GatewayResponses, LambdaAuthorizer, ResourcePolicy
from nrtsync_local.gateway.server import ApiGatewayFront
from nrtsync_local.poller import SqsEventSourcePoller
from nrtsync_local.stack.handlers import LocalHandlers
from nrtsync_local.stack.schedule import optional_schedule_interval, run_schedule, schedule_interval
from nrtsync_local.stack.spec import (
    INGEST,
    LOGGER_NAME,
    METRICS,
    RECONCILE,
    SYNC,
    api_of,
    api_routes,
    authorizer_function,
)
from nrtsync_local.template import event_source, function_properties, parameter_defaults

if TYPE_CHECKING:
    import trustme

log = logging.getLogger(LOGGER_NAME)

_STOP_JOIN_SECONDS = 10.0


class StackThreads:
    """The stack's daemon threads and the one event that tells them to stop."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def join(self) -> None:
        """Waits for each thread (after ``stopping`` was set), up to 10 s each; a stuck one is left, as a daemon."""
        for thread in self._threads:
            thread.join(timeout=_STOP_JOIN_SECONDS)
            if thread.is_alive():
                log.warning("%s still running after %ss; leaving it (daemon thread)", thread.name, _STOP_JOIN_SECONDS)
        self._threads = []


def start_front(
    template: Mapping[str, Any],
    handlers: LocalHandlers,
    *,
    region: str,
    tls: trustme.CA | None = None,
    parameters: Mapping[str, str] | None = None,
) -> ApiGatewayFront:
    """The ingest function's API, with the template's stage, routes, resource policy, authorizer and gateway
    responses, started; HTTPS with a certificate from ``tls`` when given. ``parameters`` override the template's
    parameter defaults (``AllowedSourceCidrs``)."""
    stage = parameter_defaults(template)["StageName"]
    properties = function_properties(template, INGEST)
    api = api_of(template, INGEST)

    authorizer: LambdaAuthorizer | None = None
    authorizer_id = authorizer_function(template)
    if authorizer_id is not None:
        authorizer_properties = function_properties(template, authorizer_id)
        authorizer = LambdaAuthorizer.from_template(
            template,
            api,
            handlers.invoke_authorizer,
            timeout_seconds=float(authorizer_properties.get("Timeout", 3)),
            memory_mb=int(authorizer_properties.get("MemorySize", 128)),
        )

    return ApiGatewayFront(
        handlers.invoke_ingest,
        routes=api_routes(template, INGEST),
        stage=stage,
        function_name=INGEST,
        timeout_seconds=float(properties.get("Timeout", 3)),
        memory_mb=int(properties.get("MemorySize", 128)),
        gateway_responses=GatewayResponses.from_template(template, api),
        authorizer=authorizer,
        resource_policy=ResourcePolicy.from_template(template, api, refs=parameters),
        region=region,
        tls=tls,
    ).start()


def sync_poller(
    template: Mapping[str, Any],
    handlers: LocalHandlers,
    sqs: Any,
    resources: LocalResources,
    *,
    window_seconds: float | None,
    region: str,
) -> SqsEventSourcePoller:
    """The sync function's SQS event source mapping: batch size, batching window (unless ``window_seconds``)."""
    mapping = event_source(template, SYNC)
    window = window_seconds if window_seconds is not None else float(mapping["MaximumBatchingWindowInSeconds"])
    return SqsEventSourcePoller(
        sqs,
        queue_url=resources.queue_url,
        queue_arn=resources.queue_arn,
        handler=handlers.sync_handler(),
        batch_size=int(mapping["BatchSize"]),
        window_seconds=window,
        function_timeout_seconds=float(function_properties(template, SYNC).get("Timeout", 3)),
        function_name=SYNC,
        region=region,
        switch=handlers.switch,
    )


def run_poller(poller: SqsEventSourcePoller, stopping: threading.Event) -> None:
    """Polls until ``stopping`` is set; an SQS hiccup is logged and retried 1 s later, it does not end the thread."""
    while not stopping.is_set():
        try:
            poller.poll_once(stopping)
        except Exception:  # an SQS hiccup must not end the poller; it is printed
            log.exception("the sync poller failed to receive or delete; retrying in 1 s")
            stopping.wait(1)


def wait_quiet(depth: Callable[[], Mapping[str, int]], busy: Callable[[], bool], timeout: float) -> None:
    """``LocalDeployment.wait_until_drained``: returns once ``depth()`` counts nothing and ``busy()`` is false,
    twice in a row 0.1 s apart; TimeoutError with the last counts otherwise."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while True:
        counts = depth()
        if not any(counts.values()) and not busy():
            quiet += 1
            if quiet >= 2:
                return
        else:
            quiet = 0
        if time.monotonic() >= deadline:
            raise TimeoutError(f"the callout queue did not drain in {timeout}s: {dict(counts)}, sync busy={busy()}")
        time.sleep(0.1)


class Schedules(NamedTuple):
    """The stack's schedule overrides: the breaker's probe (0: none), the metrics function's, and the reconcile
    function's (``"off"``: none); None follows the template."""

    probe: float | None
    metrics: float | None
    reconcile: float | Literal["off"] | None


def start_schedules(
    threads: StackThreads, template: Mapping[str, Any], handlers: LocalHandlers, schedules: Schedules
) -> float | None:
    """The EventBridge rules: the breaker's probe, the metrics function's schedule (when it runs) and the reconcile
    function's (``optional_schedule_interval``); returns the reconcile function's interval, None when it is not
    scheduled."""
    stopping = threads.stopping
    if schedules.probe != 0:
        probe = schedule_interval(template, SYNC, schedules.probe)
        threads.spawn("breaker-probe", lambda: run_schedule(stopping, probe, handlers.invoke_probe))
    if handlers.runs_metrics:
        metrics = schedule_interval(template, METRICS, schedules.metrics)
        threads.spawn("metrics-schedule", lambda: run_schedule(stopping, metrics, handlers.invoke_metrics))
    if not handlers.runs_reconcile:
        return None
    every = optional_schedule_interval(template, RECONCILE, schedules.reconcile)
    if every is not None:
        interval = every
        threads.spawn(f"{RECONCILE}-schedule", lambda: run_schedule(stopping, interval, handlers.invoke_reconcile))
    return every


def queue_depth(sqs: Any, queue_url: str) -> dict[str, int]:
    """The queue's visible, in-flight and delayed message counts (approximate, as SQS says)."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return {
        "visible": int(attributes.get("ApproximateNumberOfMessages", 0)),
        "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        "delayed": int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
    }
