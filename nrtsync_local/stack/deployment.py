"""``LocalDeployment``: the stack deployed on this machine, its parts started and stopped in order; what a caller
reads from it (resources, URLs, ``info()``, the queue's depth) and ``wait_until_drained``."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from nrtsync_local.aws import REGION, STACK, LocalResources, MotoServer, client, provision
from nrtsync_local.gateway.rules import Handler
from nrtsync_local.gateway.server import ApiGatewayFront
from nrtsync_local.poller import PollStats, SqsEventSourcePoller
from nrtsync_local.stack.environment import (
    ProcessEnvironment,
    SalesforceOrg,
    function_environments,
    generated_password,
    standin_secret,
    template_username,
)
from nrtsync_local.stack.handlers import LocalHandlers
from nrtsync_local.stack.spec import INGEST, RECONCILE, SYNC, LocalDeploymentError, api_routes
from nrtsync_local.stack.state_file import claim_state_file, write_private_json
from nrtsync_local.stack.threads import (
    Schedules,
    StackThreads,
    queue_depth,
    run_poller,
    start_front,
    start_schedules,
    sync_poller,
    wait_quiet,
)
from nrtsync_local.stack.zuora_tenant import LocalZuora, ZuoraTenant, ca_bundle
from nrtsync_local.standin.process import StandinClient, StandinProcess
from nrtsync_local.template import load_template

if TYPE_CHECKING:
    from nrtsync.ports.queue import RetryScheduler
    from nrtsync.ports.salesforce import SalesforcePort
    from nrtsync_cli.operations import Operations
    from nrtsync_local.standin.process import ZuoraStandinClient


class LocalDeployment:
    """The stack deployed on this machine: moto + Salesforce stand-in (or a real org) + Zuora stand-in (or a real
    tenant, ``zuora_tenant``) + the three handlers, in this process. (Not named "LocalStack": that is a well-known
    AWS emulator, which this does not use.)

    ``start()`` returns once callouts can be sent; ``stop()`` stops every part (threads joined, the stand-in
    stopped by its pid) and restores the environment variables it changed. Use it as a context manager.

    One at a time per process: while started, a stack owns ``os.environ``'s AWS, Powertools and
    ``REQUESTS_CA_BUNDLE`` variables and the handlers' module-level services. Stacks started one after the other
    in one process share moto's state (moto keeps it per process): give each a distinct ``stack_name``.
    """

    _running: LocalDeployment | None = None
    _running_lock = threading.Lock()

    def __init__(
        self,
        *,
        workdir: Path | None = None,
        state_file: Path | None = None,
        sync_batch_window_seconds: float | None = None,
        salesforce_latency_ms: int = 0,
        with_metrics: bool = True,
        metrics_interval_seconds: float | None = None,
        salesforce_org: SalesforceOrg | None = None,
        zuora_tenant: ZuoraTenant | None = None,
        callout_username: str | None = None,
        callout_password: str | None = None,
        environment_overrides: Mapping[str, str] | None = None,
        stack_name: str = STACK,
        region: str = REGION,
        template: dict[str, Any] | None = None,
        sync_handler_wrapper: Callable[[Handler], Handler] | None = None,
        salesforce_wrapper: Callable[[SalesforcePort], SalesforcePort] | None = None,
        sync_clock: Callable[[], datetime] | None = None,
        retries_wrapper: Callable[[RetryScheduler], RetryScheduler] | None = None,
        probe_interval_seconds: float | None = None,
        reconcile_every_seconds: float | Literal["off"] | None = None,
        zuora_callouts: bool = False,
    ) -> None:
        """``sync_clock`` and ``retries_wrapper``: a simulated clock for the sync service and its breaker, and the
        SQS visibility delays made to follow it (the long-pause drill). ``probe_interval_seconds``: the breaker's
        probe schedule (None: the template's, once a minute; 0: not scheduled, the caller runs ``run_probe_now``).
        ``reconcile_every_seconds``: the reconcile function's schedule (None: the template's ``ReconcileSchedule``
        when it is a rate; ``"off"``: not scheduled, the caller runs ``run_reconcile_now``). ``zuora_callouts``: an
        HTTPS front that the Zuora stand-in calls out to by itself (``LocalZuora``)."""
        self._template = template or load_template()
        self._handlers = LocalHandlers(
            self._template,
            region=region,
            stack_name=stack_name,
            with_metrics=with_metrics,
            sync_handler_wrapper=sync_handler_wrapper,
            salesforce_wrapper=salesforce_wrapper,
            sync_clock=sync_clock,
            retries_wrapper=retries_wrapper,
        )
        self._schedules = Schedules(probe_interval_seconds, metrics_interval_seconds, reconcile_every_seconds)
        self._reconcile_interval: float | None = None
        self._workdir_given = workdir
        self._state_file = state_file
        self._window = sync_batch_window_seconds
        self._latency_ms = salesforce_latency_ms
        self._org = salesforce_org
        self._zuora = LocalZuora(zuora_tenant, callouts=zuora_callouts)
        self._callout_username = callout_username or template_username(self._template)
        self._callout_password = callout_password or generated_password(self._template)
        self._overrides = dict(environment_overrides or {})
        self._stack_name = stack_name
        self._region = region

        self._threads = StackThreads()
        self._environment = ProcessEnvironment()
        self._workdir: Path | None = None
        self._own_workdir = False
        self._moto: MotoServer | None = None
        self._standin_process: StandinProcess | None = None
        self._front: ApiGatewayFront | None = None
        self._poller: SqsEventSourcePoller | None = None
        self._resources: LocalResources | None = None
        self._started = False
        self._started_at = ""
        self._wrote_state_file = False

    # --- what callers use -------------------------------------------------------------------------------------

    @property
    def resources(self) -> LocalResources:
        if self._resources is None:
            raise RuntimeError("the local stack is not started")
        return self._resources

    @property
    def callout_url(self) -> str:
        if self._front is None:
            raise RuntimeError("the local stack is not started")
        return self._front.base_url + api_routes(self._template, INGEST)[0].path

    @property
    def callout_username(self) -> str:
        return self._callout_username

    @property
    def callout_password(self) -> str:
        return self._callout_password

    @property
    def callout_auth(self) -> tuple[str, str]:
        """(username, password) for Basic auth, e.g. ``requests.post(url, auth=stack.callout_auth)``."""
        return self._callout_username, self._callout_password

    @property
    def aws_endpoint_url(self) -> str:
        return self.resources.aws_endpoint_url

    @property
    def region(self) -> str:
        return self._region

    @property
    def standin(self) -> StandinClient | None:
        """The stand-in's control API client; None when syncing into a real org."""
        return None if self._standin_process is None else self._standin_process.client

    @property
    def salesforce_url(self) -> str:
        if self._org is not None:
            return self._org.login_url
        if self.standin is None:
            raise RuntimeError("the local stack is not started")
        return self.standin.url

    @property
    def salesforce_ca_file(self) -> str | None:
        return None if self.standin is None else self.standin.ca_file

    @property
    def zuora(self) -> ZuoraStandinClient | None:
        """The Zuora stand-in's control API client; None when reading a real tenant."""
        return self._zuora.client

    @property
    def zuora_url(self) -> str:
        """The Zuora REST base URL the ``ZuoraSecret`` holds (the stand-in's, or the tenant's)."""
        return self._zuora.url

    @property
    def poll_stats(self) -> PollStats:
        if self._poller is None:
            raise RuntimeError("the local stack is not started")
        return self._poller.stats

    @property
    def event_source_enabled(self) -> bool:
        """Whether the sync function's event source mapping is enabled (the breaker disables it)."""
        return self._handlers.switch.enabled

    @property
    def sync_busy(self) -> bool:
        """Whether a sync invocation is running now."""
        return self._handlers.sync_busy

    @property
    def probe_runs(self) -> int:
        return self._handlers.probe_runs

    def run_probe_now(self) -> dict[str, Any]:
        """Runs the breaker's probe once (the sync handler with its schedule's event); returns its answer."""
        if not self._started:
            raise RuntimeError("the local stack is not started")
        return self._handlers.invoke_probe()

    @property
    def reconcile_interval_seconds(self) -> float | None:
        """Seconds between the reconcile function's scheduled runs; None when it is not run on a schedule."""
        return self._reconcile_interval

    @property
    def reconcile_runs(self) -> int:
        return self._handlers.reconcile_runs

    def run_reconcile_now(self) -> dict[str, Any]:
        """Runs the reconcile function once with a scheduled event, as its schedule does; returns its result
        (``read``, ``queued``...). What it queued is then synced like any callout (``wait_until_drained``)."""
        if not self._started:
            raise RuntimeError("the local stack is not started")
        if not self._handlers.runs_reconcile:
            raise LocalDeploymentError(f"this stack has no {RECONCILE} (not in its template)")
        return self._handlers.invoke_reconcile()

    @property
    def state_file(self) -> Path | None:
        return self._state_file

    @property
    def metrics_runs(self) -> int:
        """How many times the metrics handler ran (by the schedule or ``run_metrics_now``)."""
        return self._handlers.metrics_runs

    @property
    def metrics_error(self) -> str | None:
        """Why the metrics function could not be installed; None when it runs (or was not wanted)."""
        return self._handlers.metrics_error

    def client(self, service: str) -> Any:
        """A boto3 client of the local stack's moto (``"sqs"``, ``"dynamodb"``, ``"cloudwatch"``...)."""
        return client(service, self.aws_endpoint_url, self._region)

    def operations(self) -> Operations:
        """``nrtsync_cli.operations.Operations`` on this stack (what ``nrtsync --local`` uses)."""
        from nrtsync_cli.operations import Operations, StackResources  # noqa: PLC0415 - the layer, imported on use

        res = self.resources
        return Operations(
            StackResources(res.history_table, res.queue_url, res.dlq_url, state_table=res.state_table),
            dynamodb=self.client("dynamodb"),
            sqs=self.client("sqs"),
        )

    def info(self) -> dict[str, Any]:
        """What ``stack.json`` holds: everything a person or a tool needs to use the running stack."""
        res = self.resources
        return {
            "callout_url": self.callout_url,
            "callout_username": self._callout_username,
            "callout_password": self._callout_password,
            "aws_endpoint_url": res.aws_endpoint_url,
            "region": self._region,
            "queue_url": res.queue_url,
            "dlq_url": res.dlq_url,
            "history_table": res.history_table,
            "state_table": res.state_table,
            "callout_secret_id": res.callout_secret_id,
            "salesforce_secret_id": res.salesforce_secret_id,
            "salesforce": "org" if self._org is not None else "standin",
            "salesforce_url": self.salesforce_url,
            "salesforce_ca_file": self.salesforce_ca_file,
            "standin_pid": None if self._standin_process is None else self._standin_process.pid,
            **self._zuora.info(),
            "pid": os.getpid(),
            "started_at": self._started_at,
            "sync_function_name": SYNC,
            "event_source_file": str(self._event_source_file(self._state_file)) if self._state_file else None,
        }

    def queue_depth(self) -> dict[str, int]:
        """The callout queue's visible, in-flight and delayed message counts (approximate, as SQS says)."""
        return queue_depth(self.client("sqs"), self.resources.queue_url)

    def wait_until_drained(self, timeout: float = 30.0) -> None:
        """Returns once the queue holds nothing (visible, in flight or delayed) and no sync is running.

        Raises TimeoutError with the last counts otherwise. Checked twice in a row, 0.1 s apart, so that a
        batch between "received" and "invoked" is not missed.
        """
        wait_quiet(self.queue_depth, lambda: self._handlers.sync_busy, timeout)

    def run_metrics_now(self) -> dict[str, Any]:
        """Invokes the metrics handler once with a scheduled event, as the schedule does; returns its result."""
        if not self._started:
            raise RuntimeError("the local stack is not started")
        if not self._handlers.runs_metrics:
            raise LocalDeploymentError(
                f"this stack runs without metrics ({self.metrics_error or 'with_metrics=False'})"
            )
        return self._handlers.invoke_metrics()

    # --- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> LocalDeployment:
        with LocalDeployment._running_lock:
            if LocalDeployment._running is not None:
                raise LocalDeploymentError("a local stack is already running in this process; stop it first")
            LocalDeployment._running = self
        self._started = True
        self._started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self._threads.stopping.clear()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stops everything that was started, in reverse order; safe to call twice or after a failed start."""
        if not self._started:
            return
        self._started = False
        self._threads.stopping.set()
        if self._state_file is not None and self._wrote_state_file:
            with contextlib.suppress(FileNotFoundError):
                self._state_file.unlink()
            with contextlib.suppress(FileNotFoundError):
                self._event_source_file(self._state_file).unlink()
            self._wrote_state_file = False
        if self._front is not None:
            self._front.stop()
        self._threads.join()
        self._handlers.uninstall()
        if self._standin_process is not None:
            self._standin_process.stop()
        self._zuora.stop()
        if self._moto is not None:
            self._moto.stop()
        self._environment.restore()
        if self._own_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._front = self._poller = self._moto = self._standin_process = None
        self._resources = self._workdir = None
        with LocalDeployment._running_lock:
            LocalDeployment._running = None

    def __enter__(self) -> LocalDeployment:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- starting ---------------------------------------------------------------------------------------------

    def _start(self) -> None:
        # moto's werkzeug logs every AWS call at INFO; the handlers' own logs say what matters.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        claim_state_file(self._state_file)
        if self._workdir_given is not None:
            self._workdir = self._workdir_given
            self._workdir.mkdir(parents=True, exist_ok=True)
        else:
            self._workdir = Path(tempfile.mkdtemp(prefix="nrtsync-local-"))
            self._own_workdir = True

        salesforce_secret = self._salesforce_secret(self._workdir)
        self._moto = MotoServer()
        endpoint = self._moto.start()
        self._resources = provision(
            endpoint,
            callout_credentials={"username": self._callout_username, "password": self._callout_password},
            salesforce_credentials=salesforce_secret,
            region=self._region,
            template=self._template,
            stack=self._stack_name,
        )
        zuora_secret_id = self._zuora.start(self._workdir, self.client("secretsmanager"), self._stack_name)
        environments = function_environments(
            self._template,
            self._resources,
            stack_name=self._stack_name,
            region=self._region,
            overrides=self._overrides,
            zuora_secret_id=zuora_secret_id,
        )
        self._environment.configure(
            environments,
            aws_endpoint_url=self._resources.aws_endpoint_url,
            region=self._region,
            ca_file=ca_bundle(self._workdir / "ca-bundle.pem", [self.salesforce_ca_file, *self._zuora.ca_files]),
        )
        if self._state_file is not None:
            self._handlers.use_switch_file(self._event_source_file(self._state_file))
        self._handlers.install(environments)
        # The one template parameter the front reads, set as the stack sets it for the ingest function.
        cidrs = self._overrides.get("ALLOWED_SOURCE_CIDRS")
        parameters = {"AllowedSourceCidrs": cidrs} if cidrs is not None else None
        self._front = start_front(
            self._template, self._handlers, region=self._region, tls=self._zuora.front_ca, parameters=parameters
        )
        poller = sync_poller(
            self._template,
            self._handlers,
            self.client("sqs"),
            self._resources,
            window_seconds=self._window,
            region=self._region,
        )
        self._poller = poller
        self._threads.spawn("sync-poller", lambda: run_poller(poller, self._threads.stopping))
        self._reconcile_interval = start_schedules(self._threads, self._template, self._handlers, self._schedules)
        if self._state_file is not None:
            write_private_json(self._state_file, self.info())
            self._wrote_state_file = True
        self._zuora.set_up_callouts(self.callout_url, self.callout_auth, self._overrides.get("SYNC_MAPPING_PATH"))

    @staticmethod
    def _event_source_file(state_file: Path) -> Path:
        return state_file.with_name(state_file.stem + ".event-source.json")

    def _salesforce_secret(self, workdir: Path) -> dict[str, str]:
        """The Salesforce secret's JSON: the real org's, or the stand-in's once it is started in ``workdir``."""
        if self._org is not None:
            return dict(self._org.secret)
        self._standin_process = StandinProcess(workdir)
        return standin_secret(self._standin_process.start(), latency_ms=self._latency_ms)
