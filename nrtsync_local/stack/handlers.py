"""The functions' handlers in this process: built by ``nrtsync.app`` from each function's environment,
installed in the handlers' ``Lazy`` holders, and invoked one at a time under one lock; the fault drill's wrappers
go around the sync handler (as the poller calls it) and the sync service's Salesforce port."""

from __future__ import annotations

import logging
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrtsync_local.gateway.rules import Handler
from nrtsync_local.poller import LocalContext, LocalLambdaApi, MappingSwitch
from nrtsync_local.stack.schedule import scheduled_event
from nrtsync_local.stack.spec import INGEST, LOGGER_NAME, METRICS, RECONCILE, SYNC, authorizer_function
from nrtsync_local.template import function_properties

if TYPE_CHECKING:
    from datetime import datetime

    from nrtsync.ports.queue import RetryScheduler
    from nrtsync.ports.salesforce import SalesforcePort

log = logging.getLogger(LOGGER_NAME)

# How long the local mapping stays Enabling or Disabling after a change. AWS takes seconds; here it is shorter than
# LambdaEventSourceSwitch's first wait (0.5 s), so a refused change goes through on its first retry.
MAPPING_TRANSITION_SECONDS = 0.3


class LocalHandlers:
    """The functions' handlers as one warm container each, sharing this process.

    The handlers share Powertools' process-wide logger and metrics here, hence one invocation at a time.
    ``metrics_error`` says why the metrics function could not be installed (the stack then runs without it).
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        region: str,
        stack_name: str,
        with_metrics: bool,
        sync_handler_wrapper: Callable[[Handler], Handler] | None = None,
        salesforce_wrapper: Callable[[SalesforcePort], SalesforcePort] | None = None,
        sync_clock: Callable[[], datetime] | None = None,
        retries_wrapper: Callable[[RetryScheduler], RetryScheduler] | None = None,
    ) -> None:
        self._template = template
        self._region = region
        self._stack_name = stack_name
        self._with_metrics = with_metrics
        # Fault drills (nrtsync_local.drill.run) wrap the sync handler the poller invokes, e.g. to "kill" an
        # invocation after it returned but before the poller deleted its messages.
        self._sync_handler_wrapper = sync_handler_wrapper
        # ... and the sync service's Salesforce port, e.g. to die after Salesforce answered a call.
        self._salesforce_wrapper = salesforce_wrapper
        # A drill's simulated clock for the sync service (and its breaker), and its wrapper of the SQS visibility
        # delays (so that they follow that clock).
        self._sync_clock = sync_clock
        self._retries_wrapper = retries_wrapper
        # The sync function's event source mapping: the breaker disables it, the poller honours it.
        self.switch = MappingSwitch(transition_seconds=MAPPING_TRANSITION_SECONDS)
        self.probe_runs = 0
        self._authorizer: str | None = None
        self._invoke_lock = threading.Lock()
        self.sync_busy = False
        self.metrics_runs = 0
        self.metrics_error: str | None = None
        self.reconcile_runs = 0
        self.runs_reconcile = False
        """Whether the reconcile function is installed (the template has it and the stack has a Zuora secret)."""

    @property
    def runs_metrics(self) -> bool:
        """Whether the metrics function is wanted and could be installed."""
        return self._with_metrics and self.metrics_error is None

    def use_switch_file(self, path: Path) -> None:
        """Keep the mapping's enabled flag in ``path`` too, so the CLI (another process) can pause the stack."""
        self.switch = MappingSwitch(path, transition_seconds=MAPPING_TRANSITION_SECONDS)

    def install(self, environments: Mapping[str, Mapping[str, str]]) -> None:
        # Imported only now: Powertools reads POWERTOOLS_* when nrtsync.observability is first imported.
        from functions.ingest import app as ingest_app  # noqa: PLC0415
        from functions.sync import app as sync_app  # noqa: PLC0415
        from nrtsync.adapters.aws.event_source import LambdaEventSourceSwitch  # noqa: PLC0415
        from nrtsync.app.authorizer import build_authorizer  # noqa: PLC0415
        from nrtsync.app.ingest import build_ingest  # noqa: PLC0415
        from nrtsync.app.metrics import build_metrics  # noqa: PLC0415
        from nrtsync.app.reconcile import build_reconcile  # noqa: PLC0415
        from nrtsync.app.shared import build_salesforce  # noqa: PLC0415
        from nrtsync.app.sync import build_sync  # noqa: PLC0415
        from nrtsync.observability import metrics  # noqa: PLC0415
        from nrtsync.services.ingest.settings import IngestSettings  # noqa: PLC0415
        from nrtsync.services.sync.settings import SyncSettings  # noqa: PLC0415

        # A caller may have imported the layer before the stack set the environment (make demo's dashboard page
        # does): Powertools then read no namespace, and every flush would fail. The stack's environment decides.
        metrics.namespace = dict(environments[INGEST]).get("POWERTOOLS_METRICS_NAMESPACE") or metrics.namespace
        ingest_app.endpoint.use(build_ingest(IngestSettings.from_env(dict(environments[INGEST]))))
        self._authorizer = authorizer = authorizer_function(self._template)
        if authorizer is not None:
            from functions.authorizer import app as authorizer_app  # noqa: PLC0415
            from nrtsync.services.ingest.settings import AuthorizerSettings  # noqa: PLC0415

            authorizer_app.authorizer.use(build_authorizer(AuthorizerSettings.from_env(dict(environments[authorizer]))))
        sync_settings = SyncSettings.from_env(dict(environments[SYNC]))
        salesforce = build_salesforce(sync_settings)
        if self._salesforce_wrapper is not None:
            salesforce = self._salesforce_wrapper(salesforce)
        extra: dict[str, Any] = {"clock": self._sync_clock} if self._sync_clock is not None else {}
        if self._retries_wrapper is not None:
            from nrtsync.adapters.aws.sqs import SqsChangeQueue  # noqa: PLC0415

            extra["retries"] = self._retries_wrapper(SqsChangeQueue(sync_settings.queue_url))
        # The breaker switches the mapping through the layer's own Lambda adapter, as on AWS, busy answers included.
        function_name, queue_arn = sync_settings.function_name or SYNC, sync_settings.queue_arn or ""
        lambda_api = LocalLambdaApi(self.switch, function_name=function_name, queue_arn=queue_arn)
        switch = LambdaEventSourceSwitch(function_name, queue_arn, lambda_api)
        sync_app.service.use(build_sync(sync_settings, salesforce=salesforce, event_source=switch, **extra))
        if RECONCILE in environments:
            from functions.reconcile import app as reconcile_app  # noqa: PLC0415
            from nrtsync.services.reconcile.settings import ReconcileSettings  # noqa: PLC0415

            reconcile_app.service.use(build_reconcile(ReconcileSettings.from_env(dict(environments[RECONCILE]))))
            self.runs_reconcile = True
        if self._with_metrics:
            try:
                from functions.metrics import app as metrics_app  # noqa: PLC0415
                from nrtsync.services.metrics.settings import MetricsSettings  # noqa: PLC0415

                metrics_app.service.use(build_metrics(MetricsSettings.from_env(dict(environments[METRICS]))))
            except Exception as exc:  # the stack runs without metrics rather than not at all (printed below)
                self.metrics_error = f"{type(exc).__name__}: {exc}"
                log.exception("MetricsFunction cannot be imported; the local stack runs without metrics")

    def uninstall(self) -> None:
        for module, holder in (
            ("functions.ingest.app", "endpoint"),
            ("functions.authorizer.app", "authorizer"),
            ("functions.sync.app", "service"),
            ("functions.metrics.app", "service"),
            ("functions.reconcile.app", "service"),
        ):
            loaded = sys.modules.get(module)
            if loaded is not None:
                getattr(loaded, holder).use(None)
        self.runs_reconcile = False

    def invoke(self, function: str, handler: Handler, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """One invocation at a time, each starting with the logger as a fresh container has it.

        The three functions share Powertools' logger and metrics here (one process); in Lambda each has its own.
        Without the lock one function's flush could carry another's metrics, and keys a handler appends
        (correlation id, schedule id) would show up in the next function's logs.
        """
        from nrtsync.observability import logger  # noqa: PLC0415 - imported once the environment is set

        with self._invoke_lock:
            if isinstance(context, LocalContext):
                context.begin()  # the function's timeout counts from here, not from the wait for the lock
            logger.clear_state()
            try:
                return handler(event, context)
            except Exception:
                log.exception("%s raised", function)
                raise

    def invoke_ingest(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        from functions.ingest import app as ingest_app  # noqa: PLC0415

        return self.invoke(INGEST, ingest_app.lambda_handler, event, context)

    def invoke_authorizer(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        from functions.authorizer import app as authorizer_app  # noqa: PLC0415

        return self.invoke(str(self._authorizer), authorizer_app.lambda_handler, event, context)

    def sync_handler(self) -> Handler:
        """The sync handler as the SQS poller invokes it, inside the fault drill's wrapper if there is one."""
        handler: Handler = self._invoke_sync
        if self._sync_handler_wrapper is not None:
            handler = self._sync_handler_wrapper(handler)
        return handler

    def _invoke_sync(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        from functions.sync import app as sync_app  # noqa: PLC0415

        # Set before the lock is taken: wait_until_drained must see a batch that waits for a callout to finish.
        self.sync_busy = True
        try:
            # An exception leaves the whole batch on the queue, as in Lambda.
            return self.invoke(SYNC, sync_app.lambda_handler, event, context)
        finally:
            self.sync_busy = False

    def invoke_probe(self) -> dict[str, Any]:
        """One run of the breaker's probe: the sync handler with its schedule's event, as EventBridge sends it."""
        from functions.sync import app as sync_app  # noqa: PLC0415

        result = self._run_scheduled(SYNC, sync_app.lambda_handler, "BreakerProbe")
        self.probe_runs += 1
        return result

    def invoke_metrics(self) -> dict[str, Any]:
        """One run of the metrics handler with a scheduled event, as EventBridge sends it."""
        from functions.metrics import app as metrics_app  # noqa: PLC0415

        result = self._run_scheduled(METRICS, metrics_app.lambda_handler, "Schedule")
        self.metrics_runs += 1
        return result

    def invoke_reconcile(self) -> dict[str, Any]:
        """One run of the reconcile handler with a scheduled event, as EventBridge sends it; its result."""
        from functions.reconcile import app as reconcile_app  # noqa: PLC0415

        try:
            return self._run_scheduled(RECONCILE, reconcile_app.lambda_handler, "Schedule")
        finally:
            # A run that raised (an object's sweep failed, reported first) still ran, as Lambda counts it.
            self.reconcile_runs += 1

    def _run_scheduled(self, function: str, handler: Handler, rule: str) -> dict[str, Any]:
        """``handler`` invoked once with the event of the function's EventBridge rule ``rule``, in a context with
        the template's timeout and memory size."""
        properties = function_properties(self._template, function)
        context = LocalContext(
            function_name=function,
            timeout_seconds=float(properties.get("Timeout", 3)),
            memory_limit_in_mb=int(properties.get("MemorySize", 128)),
            aws_request_id=str(uuid.uuid4()),
        )
        event = scheduled_event(region=self._region, rule=f"{self._stack_name}-{function}-{rule}")
        return self.invoke(function, handler, event, context)
