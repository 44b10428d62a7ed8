"""`make local`: the whole product on this machine, in one process, until Ctrl-C or SIGTERM.

    .venv/bin/python -m nrtsync_local.stack [--state-dir .local] [--batch-window SECONDS] [--no-metrics]

What runs (docs/LOCAL.md has the details):

* moto in server mode (SQS, DynamoDB, Secrets Manager, CloudWatch) with the queues, tables and secrets that
  ``template.yaml`` declares, built from its own properties;
* the HTTPS Salesforce stand-in as a child process, unless a real org is configured (``SALESFORCE_LOGIN_URL``);
* a local API Gateway front that turns HTTP requests into REST proxy events for the ingest handler, behind the
  template's Lambda authorizer (the real authorizer handler) and gateway responses;
* the SQS event source poller that feeds the sync handler batches, as the template's event source mapping says;
* the metrics handler on the template's ``MetricsSchedule``.

The three handlers run in this process and share Powertools' process-wide logger and metrics, so they are
invoked one at a time (one lock), as if each had a single warm container. Each gets its own settings object,
built from its function's environment in the template by ``nrtsync.wiring``, installed in the handler's ``Lazy`` holder.

``LocalDeployment`` is the same thing for code that wants it in-process (``make demo``, ``make bench``, the e2e tests).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import string
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from nrtsync_local.aws import REGION, STACK, LocalResources, MotoServer, client, provision
from nrtsync_local.front import LOCAL_ACCOUNT_ID, ApiGatewayFront, GatewayResponses, Handler, LambdaAuthorizer, Route
from nrtsync_local.poller import LocalContext, PollStats, SqsEventSourcePoller
from nrtsync_local.processes import StandinClient, StandinProcess
from nrtsync_local.template import (
    api_authorizer,
    event_source,
    function_environment,
    function_properties,
    load_template,
    parameter_defaults,
    resource,
)

if TYPE_CHECKING:
    from nrtsync.ports.sync import SalesforcePort
    from nrtsync_cli.operations import Operations

log = logging.getLogger("nrtsync_local.stack")

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
DEFAULT_STATE_DIR = Path(".local")
STATE_FILE_NAME = "stack.json"
SERVICE_NAME = "nrtsync-local"
INGEST, SYNC, METRICS = "IngestFunction", "SyncFunction", "MetricsFunction"
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(second|seconds|minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_CRON_FALLBACK_SECONDS = 60.0
_STOP_JOIN_SECONDS = 10.0
# moto and Powertools accept any credentials; these keep a developer's real ones away from the local stack.
_DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local"}


class LocalDeploymentError(RuntimeError):
    """The local stack cannot start as configured (the message says what to fix)."""


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


@dataclass(frozen=True)
class SalesforceOrg:
    """A real org to sync into instead of the stand-in: the Salesforce secret's JSON (docs/SALESFORCE.md)."""

    secret: Mapping[str, str]

    @property
    def login_url(self) -> str:
        return self.secret["login_url"]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> SalesforceOrg | None:
        """From ``SALESFORCE_*`` variables; None when ``SALESFORCE_LOGIN_URL`` is not set (use the stand-in)."""
        env = os.environ if environ is None else environ
        login_url = env.get("SALESFORCE_LOGIN_URL", "").strip()
        if not login_url:
            return None
        flow = env.get("SALESFORCE_AUTH_FLOW", "client_credentials").strip() or "client_credentials"
        required = ["SALESFORCE_CLIENT_ID"]
        required += (
            ["SALESFORCE_USERNAME", "SALESFORCE_PRIVATE_KEY_FILE"]
            if flow == "jwt_bearer"
            else ["SALESFORCE_CLIENT_SECRET"]
        )
        missing = [name for name in required if not env.get(name, "").strip()]
        if missing:
            raise LocalDeploymentError(f"SALESFORCE_LOGIN_URL is set ({flow} flow) but not {', '.join(missing)}")
        secret = {"auth_flow": flow, "login_url": login_url, "client_id": env["SALESFORCE_CLIENT_ID"].strip()}
        if flow == "jwt_bearer":
            key_file = Path(env["SALESFORCE_PRIVATE_KEY_FILE"]).expanduser()
            try:
                secret |= {"username": env["SALESFORCE_USERNAME"].strip(), "private_key": key_file.read_text()}
            except OSError as exc:
                raise LocalDeploymentError(f"cannot read SALESFORCE_PRIVATE_KEY_FILE {key_file}: {exc}") from exc
            # Only an Experience Cloud site needs it: the default follows the login URL (models/salesforce.py).
            if audience := env.get("SALESFORCE_AUDIENCE", "").strip():
                secret["audience"] = audience
        else:
            secret["client_secret"] = env["SALESFORCE_CLIENT_SECRET"].strip()
        cls._validate(secret)
        return cls(secret=secret)

    @staticmethod
    def _validate(secret: Mapping[str, str]) -> None:
        from nrtsync.models.salesforce import SalesforceCredentials  # noqa: PLC0415 - the layer's model, same rules

        try:
            SalesforceCredentials.model_validate(dict(secret))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'secret'}: {e['msg']}" for e in exc.errors())
            raise LocalDeploymentError(f"the SALESFORCE_* variables do not make a valid secret: {problems}") from exc


def _generated_password(template: Mapping[str, Any]) -> str:
    """Like the template's GenerateSecretString for the callout secret: letters and digits, its length."""
    spec = resource(template, "CalloutSecret").get("Properties", {}).get("GenerateSecretString", {})
    length = int(spec.get("PasswordLength", 32))
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _template_username(template: Mapping[str, Any]) -> str:
    spec = resource(template, "CalloutSecret").get("Properties", {}).get("GenerateSecretString", {})
    document = json.loads(spec.get("SecretStringTemplate") or "{}")
    return str(document.get("username") or "zuora")


def _api_routes(template: Mapping[str, Any], logical_id: str) -> list[Route]:
    events = resource(template, logical_id, "AWS::Serverless::Function").get("Properties", {}).get("Events", {})
    return [
        Route(path=str(e["Properties"]["Path"]), method=str(e["Properties"]["Method"]).upper())
        for e in events.values()
        if e.get("Type") == "Api"
    ]


def _api_of(template: Mapping[str, Any], logical_id: str) -> str:
    """The logical id of the ``AWS::Serverless::Api`` the function's ``Api`` events belong to."""
    events = resource(template, logical_id, "AWS::Serverless::Function").get("Properties", {}).get("Events", {})
    apis = {
        str(e["Properties"]["RestApiId"]["Ref"])
        for e in events.values()
        if e.get("Type") == "Api" and isinstance(e["Properties"].get("RestApiId"), Mapping)
    }
    if len(apis) != 1:
        raise LocalDeploymentError(f"{logical_id}'s Api events name {sorted(apis)}, not exactly one RestApiId")
    return apis.pop()


def _authorizer_function(template: Mapping[str, Any]) -> str | None:
    """The logical id of the ingest API's authorizer function, or None when the API has no authorizer."""
    spec = api_authorizer(template, _api_of(template, INGEST))
    return None if spec is None else str(spec["Function"])


def _schedule_expression(template: Mapping[str, Any], logical_id: str) -> str:
    events = resource(template, logical_id, "AWS::Serverless::Function").get("Properties", {}).get("Events", {})
    for event in events.values():
        if event.get("Type") == "Schedule":
            schedule = event["Properties"]["Schedule"]
            if isinstance(schedule, Mapping) and "Ref" in schedule:
                return parameter_defaults(template)[str(schedule["Ref"])]
            return str(schedule)
    raise LocalDeploymentError(f"{logical_id} has no Schedule event in the template")


def write_private_json(path: Path, document: Mapping[str, Any]) -> None:
    """Writes ``document`` to ``path`` with mode 0600, atomically (a reader never sees half a file)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
    temporary.replace(path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalDeployment:
    """The stack deployed on this machine: moto + Salesforce stand-in (or a real org) + the three handlers, in
    this process. (Not named "LocalStack": that is a well-known AWS emulator, which this does not use.)

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
        callout_username: str | None = None,
        callout_password: str | None = None,
        environment_overrides: Mapping[str, str] | None = None,
        stack_name: str = STACK,
        region: str = REGION,
        template: dict[str, Any] | None = None,
        sync_handler_wrapper: Callable[[Handler], Handler] | None = None,
        salesforce_wrapper: Callable[[SalesforcePort], SalesforcePort] | None = None,
    ) -> None:
        self._template = template or load_template()
        # Fault drills (nrtsync_local.faults) wrap the sync handler the poller invokes, e.g. to "kill" an
        # invocation after it returned but before the poller deleted its messages.
        self._sync_handler_wrapper = sync_handler_wrapper
        # ... and the sync service's Salesforce port, e.g. to die after Salesforce answered a call.
        self._salesforce_wrapper = salesforce_wrapper
        self._workdir_given = workdir
        self._state_file = state_file
        self._window = sync_batch_window_seconds
        self._latency_ms = salesforce_latency_ms
        self._with_metrics = with_metrics
        self._metrics_interval = metrics_interval_seconds
        self._org = salesforce_org
        self._callout_username = callout_username or _template_username(self._template)
        self._callout_password = callout_password or _generated_password(self._template)
        self._overrides = dict(environment_overrides or {})
        self._stack_name = stack_name
        self._region = region

        self._invoke_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._saved_env: dict[str, str | None] = {}
        self._workdir: Path | None = None
        self._own_workdir = False
        self._moto: MotoServer | None = None
        self._standin_process: StandinProcess | None = None
        self._front: ApiGatewayFront | None = None
        self._poller: SqsEventSourcePoller | None = None
        self._resources: LocalResources | None = None
        self._sync_busy = False
        self._started = False
        self._started_at = ""
        self._wrote_state_file = False
        self.metrics_runs = 0
        self.metrics_error: str | None = None

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
        return self._front.base_url + _api_routes(self._template, INGEST)[0].path

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
    def poll_stats(self) -> PollStats:
        if self._poller is None:
            raise RuntimeError("the local stack is not started")
        return self._poller.stats

    @property
    def state_file(self) -> Path | None:
        return self._state_file

    def client(self, service: str) -> Any:
        """A boto3 client of the local stack's moto (``"sqs"``, ``"dynamodb"``, ``"cloudwatch"``...)."""
        return client(service, self.aws_endpoint_url, self._region)

    def operations(self) -> Operations:
        """``nrtsync_cli.operations.Operations`` on this stack (what ``nrtsync --local`` uses)."""
        from nrtsync_cli.operations import Operations, StackResources  # noqa: PLC0415 - the layer, imported on use

        res = self.resources
        return Operations(
            StackResources(res.history_table, res.queue_url, res.dlq_url),
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
            "pid": os.getpid(),
            "started_at": self._started_at,
        }

    def queue_depth(self) -> dict[str, int]:
        """The callout queue's visible, in-flight and delayed message counts (approximate, as SQS says)."""
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=self.resources.queue_url,
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

    def wait_until_drained(self, timeout: float = 30.0) -> None:
        """Returns once the queue holds nothing (visible, in flight or delayed) and no sync is running.

        Raises TimeoutError with the last counts otherwise. Checked twice in a row, 0.1 s apart, so that a
        batch between "received" and "invoked" is not missed.
        """
        deadline = time.monotonic() + timeout
        quiet = 0
        while True:
            depth = self.queue_depth()
            if not any(depth.values()) and not self._sync_busy:
                quiet += 1
                if quiet >= 2:
                    return
            else:
                quiet = 0
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"the callout queue did not drain in {timeout}s: {depth}, sync busy={self._sync_busy}"
                )
            time.sleep(0.1)

    def run_metrics_now(self) -> dict[str, Any]:
        """Invokes the metrics handler once with a scheduled event, as the schedule does; returns its result."""
        if not self._started:
            raise RuntimeError("the local stack is not started")
        if not self._with_metrics or self.metrics_error is not None:
            raise LocalDeploymentError(
                f"this stack runs without metrics ({self.metrics_error or 'with_metrics=False'})"
            )
        return self._invoke_metrics()

    # --- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> LocalDeployment:
        with LocalDeployment._running_lock:
            if LocalDeployment._running is not None:
                raise LocalDeploymentError("a local stack is already running in this process; stop it first")
            LocalDeployment._running = self
        self._started = True
        self._started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self._stop.clear()
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
        self._stop.set()
        if self._state_file is not None and self._wrote_state_file:
            with contextlib.suppress(FileNotFoundError):
                self._state_file.unlink()
            self._wrote_state_file = False
        if self._front is not None:
            self._front.stop()
        for thread in self._threads:
            thread.join(timeout=_STOP_JOIN_SECONDS)
            if thread.is_alive():
                log.warning("%s still running after %ss; leaving it (daemon thread)", thread.name, _STOP_JOIN_SECONDS)
        self._threads = []
        self._uninstall_handlers()
        if self._standin_process is not None:
            self._standin_process.stop()
        if self._moto is not None:
            self._moto.stop()
        self._restore_environment()
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
        self._check_state_file()
        if self._workdir_given is not None:
            self._workdir = self._workdir_given
            self._workdir.mkdir(parents=True, exist_ok=True)
        else:
            self._workdir = Path(tempfile.mkdtemp(prefix="nrtsync-local-"))
            self._own_workdir = True

        salesforce_secret: dict[str, str]
        if self._org is None:
            self._standin_process = StandinProcess(self._workdir)
            standin = self._standin_process.start()
            if self._latency_ms:
                standin.set_faults(latency_ms=self._latency_ms)
            salesforce_secret = {
                "auth_flow": "client_credentials",
                "login_url": standin.url,
                "client_id": standin.client_id,
                "client_secret": standin.client_secret,
            }
        else:
            salesforce_secret = dict(self._org.secret)

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
        environments = self._function_environments(self._resources)
        self._configure_environment(environments)
        self._install_handlers(environments)
        self._start_front()
        self._start_poller()
        if self._with_metrics and self.metrics_error is None:
            self._start_metrics_schedule()
        if self._state_file is not None:
            write_private_json(self._state_file, self.info())
            self._wrote_state_file = True

    def _check_state_file(self) -> None:
        if self._state_file is None or not self._state_file.exists():
            return
        try:
            pid = int(json.loads(self._state_file.read_text()).get("pid", 0))
        except (ValueError, OSError, AttributeError):
            pid = 0
        if pid and pid != os.getpid() and _pid_alive(pid):
            raise LocalDeploymentError(f"{self._state_file} says a local stack runs as pid {pid}; stop it first")
        self._state_file.unlink(missing_ok=True)  # left by a stack that was killed

    def _function_environments(self, res: LocalResources) -> dict[str, dict[str, str]]:
        refs = {
            "AWS::StackName": self._stack_name,
            "AWS::Region": self._region,
            "AWS::AccountId": LOCAL_ACCOUNT_ID,
            "CalloutQueue": res.queue_url,
            "CalloutQueue.Arn": res.queue_arn,
            "CalloutQueue.QueueName": res.queue_url.rsplit("/", 1)[-1],
            "CalloutDeadLetterQueue": res.dlq_url,
            "CalloutSecret": res.callout_secret_id,
            "SalesforceSecret": res.salesforce_secret_id,
            "SyncStateTable": res.state_table,
            "SyncHistoryTable": res.history_table,
        }
        environments: dict[str, dict[str, str]] = {}
        authorizer = _authorizer_function(self._template)
        for logical_id in (INGEST, SYNC, METRICS, *([authorizer] if authorizer else [])):
            resolved = function_environment(self._template, logical_id, refs=refs)
            unresolved = sorted(name for name, value in resolved.items() if value is None)
            if unresolved:
                raise LocalDeploymentError(
                    f"{logical_id}'s environment names resources the local stack lacks: {unresolved}"
                )
            environment = {name: str(value) for name, value in resolved.items()}
            environment |= {k: v for k, v in self._overrides.items() if k not in _RESERVED}
            environments[logical_id] = environment
        return environments

    def _configure_environment(self, environments: Mapping[str, Mapping[str, str]]) -> None:
        """One process, one environment: the union of the functions' variables (they agree on every shared
        name but POWERTOOLS_SERVICE_NAME, which becomes one name for all), plus the local AWS endpoint."""
        merged: dict[str, str] = {}
        for environment in environments.values():
            merged |= environment
        merged |= {
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_TRACE_DISABLED": "1",
            "AWS_ENDPOINT_URL": self.resources.aws_endpoint_url,
            "AWS_DEFAULT_REGION": self._region,
            "AWS_REGION": self._region,
            **_DUMMY_CREDENTIALS,
        }
        if self.standin is not None:
            # simple-salesforce's session trusts the environment, where REQUESTS_CA_BUNDLE beats session.verify.
            merged["REQUESTS_CA_BUNDLE"] = self.standin.ca_file
        for name, value in merged.items():
            self._set_env(name, value)
        for name in ("AWS_PROFILE", "AWS_SECURITY_TOKEN"):
            self._set_env(name, None)

    def _set_env(self, name: str, value: str | None) -> None:
        if name not in self._saved_env:
            self._saved_env[name] = os.environ.get(name)
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

    def _restore_environment(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}

    def _install_handlers(self, environments: Mapping[str, Mapping[str, str]]) -> None:
        # Imported only now: Powertools reads POWERTOOLS_* when nrtsync.observability is first imported.
        from functions.ingest import app as ingest_app  # noqa: PLC0415
        from functions.sync import app as sync_app  # noqa: PLC0415
        from nrtsync import wiring  # noqa: PLC0415
        from nrtsync.settings import IngestSettings, SyncSettings  # noqa: PLC0415

        ingest_app.endpoint.use(wiring.build_ingest(IngestSettings.from_env(dict(environments[INGEST]))))
        authorizer = _authorizer_function(self._template)
        if authorizer is not None:
            from functions.authorizer import app as authorizer_app  # noqa: PLC0415
            from nrtsync.settings import AuthorizerSettings  # noqa: PLC0415

            authorizer_app.authorizer.use(
                wiring.build_authorizer(AuthorizerSettings.from_env(dict(environments[authorizer])))
            )
        sync_settings = SyncSettings.from_env(dict(environments[SYNC]))
        salesforce = wiring.build_salesforce(sync_settings)
        if self._salesforce_wrapper is not None:
            salesforce = self._salesforce_wrapper(salesforce)
        sync_app.service.use(wiring.build_sync(sync_settings, salesforce=salesforce))
        if self._with_metrics:
            try:
                from functions.metrics import app as metrics_app  # noqa: PLC0415
                from nrtsync.settings import MetricsSettings  # noqa: PLC0415

                metrics_app.service.use(wiring.build_metrics(MetricsSettings.from_env(dict(environments[METRICS]))))
            except Exception as exc:  # the stack runs without metrics rather than not at all (printed below)
                self.metrics_error = f"{type(exc).__name__}: {exc}"
                log.exception("MetricsFunction cannot be imported; the local stack runs without metrics")

    def _uninstall_handlers(self) -> None:
        for module, holder in (
            ("functions.ingest.app", "endpoint"),
            ("functions.authorizer.app", "authorizer"),
            ("functions.sync.app", "service"),
            ("functions.metrics.app", "service"),
        ):
            loaded = sys.modules.get(module)
            if loaded is not None:
                getattr(loaded, holder).use(None)

    def _start_front(self) -> None:
        from functions.ingest import app as ingest_app  # noqa: PLC0415

        stage = parameter_defaults(self._template)["StageName"]
        properties = function_properties(self._template, INGEST)
        api = _api_of(self._template, INGEST)

        def invoke_ingest(event: dict[str, Any], context: Any) -> dict[str, Any]:
            return self._invoke(INGEST, ingest_app.lambda_handler, event, context)

        authorizer: LambdaAuthorizer | None = None
        authorizer_function = _authorizer_function(self._template)
        if authorizer_function is not None:
            from functions.authorizer import app as authorizer_app  # noqa: PLC0415

            def invoke_authorizer(event: dict[str, Any], context: Any) -> dict[str, Any]:
                return self._invoke(authorizer_function, authorizer_app.lambda_handler, event, context)

            authorizer_properties = function_properties(self._template, authorizer_function)
            authorizer = LambdaAuthorizer.from_template(
                self._template,
                api,
                invoke_authorizer,
                timeout_seconds=float(authorizer_properties.get("Timeout", 3)),
                memory_mb=int(authorizer_properties.get("MemorySize", 128)),
            )

        self._front = ApiGatewayFront(
            invoke_ingest,
            routes=_api_routes(self._template, INGEST),
            stage=stage,
            function_name=INGEST,
            timeout_seconds=float(properties.get("Timeout", 3)),
            memory_mb=int(properties.get("MemorySize", 128)),
            gateway_responses=GatewayResponses.from_template(self._template, api),
            authorizer=authorizer,
            region=self._region,
        ).start()

    def _start_poller(self) -> None:
        mapping = event_source(self._template, SYNC)
        window = self._window if self._window is not None else float(mapping["MaximumBatchingWindowInSeconds"])
        handler: Handler = self._invoke_sync
        if self._sync_handler_wrapper is not None:
            handler = self._sync_handler_wrapper(handler)
        self._poller = SqsEventSourcePoller(
            self.client("sqs"),
            queue_url=self.resources.queue_url,
            queue_arn=self.resources.queue_arn,
            handler=handler,
            batch_size=int(mapping["BatchSize"]),
            window_seconds=window,
            function_timeout_seconds=float(function_properties(self._template, SYNC).get("Timeout", 3)),
            function_name=SYNC,
            region=self._region,
        )
        self._spawn("sync-poller", self._run_poller)

    def _start_metrics_schedule(self) -> None:
        expression = _schedule_expression(self._template, METRICS)
        interval = self._metrics_interval or schedule_seconds(expression)
        if interval is None:
            log.warning("MetricsSchedule %s is a cron expression; locally the metrics run every 60 s", expression)
            interval = _CRON_FALLBACK_SECONDS
        self._spawn("metrics-schedule", lambda: self._run_schedule(interval))

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # --- running ----------------------------------------------------------------------------------------------

    def _run_poller(self) -> None:
        poller = self._poller
        if poller is None:
            return
        while not self._stop.is_set():
            try:
                poller.poll_once(self._stop)
            except Exception:  # an SQS hiccup must not end the poller; it is printed
                log.exception("the sync poller failed to receive or delete; retrying in 1 s")
                self._stop.wait(1)

    def _invoke(self, function: str, handler: Handler, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """One invocation at a time, each starting with the logger as a fresh container has it.

        The three functions share Powertools' logger and metrics here (one process); in Lambda each has its own.
        Without the lock one function's flush could carry another's metrics, and keys a handler appends
        (correlation id, schedule id) would show up in the next function's logs.
        """
        from nrtsync.observability import logger  # noqa: PLC0415 - imported once the environment is set

        with self._invoke_lock:
            logger.clear_state()
            try:
                return handler(event, context)
            except Exception:
                log.exception("%s raised", function)
                raise

    def _invoke_sync(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        from functions.sync import app as sync_app  # noqa: PLC0415

        # Set before the lock is taken: wait_until_drained must see a batch that waits for a callout to finish.
        self._sync_busy = True
        try:
            # An exception leaves the whole batch on the queue, as in Lambda.
            return self._invoke(SYNC, sync_app.lambda_handler, event, context)
        finally:
            self._sync_busy = False

    def _run_schedule(self, interval: float) -> None:
        # EventBridge's first run of a rate rule comes one interval after the rule is created.
        while not self._stop.wait(interval):
            with contextlib.suppress(Exception):
                self._invoke_metrics()

    def _invoke_metrics(self) -> dict[str, Any]:
        from functions.metrics import app as metrics_app  # noqa: PLC0415

        event = scheduled_event(region=self._region, rule=f"{self._stack_name}-{METRICS}-Schedule")
        properties = function_properties(self._template, METRICS)
        context = LocalContext(
            function_name=METRICS,
            timeout_seconds=float(properties.get("Timeout", 3)),
            memory_limit_in_mb=int(properties.get("MemorySize", 128)),
            aws_request_id=str(uuid.uuid4()),
        )
        result = self._invoke(METRICS, metrics_app.lambda_handler, event, context)
        self.metrics_runs += 1
        return result


# Variables the stack sets itself; an override of these would point the handlers somewhere else.
_RESERVED = frozenset({"AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION", *_DUMMY_CREDENTIALS})


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


# --- `python -m nrtsync_local.stack` ---------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nrtsync_local.stack", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="where stack.json is written (default: .local)"
    )
    parser.add_argument("--batch-window", type=float, help="sync batching window in seconds (default: the template's)")
    parser.add_argument("--salesforce-latency-ms", type=int, default=0, help="the stand-in's added latency per call")
    parser.add_argument("--no-metrics", action="store_true", help="do not run the metrics function")
    parser.add_argument(
        "--metrics-interval", type=float, help="seconds between metrics runs (default: MetricsSchedule)"
    )
    return parser.parse_args(argv)


def _banner(stack: LocalDeployment) -> str:
    info = stack.info()
    state_file = stack.state_file
    example = json.loads((EVENTS_DIR / "callout_account.json").read_text(encoding="utf-8"))["body"]
    compact = json.dumps(json.loads(example), separators=(",", ":"))
    lines = [
        "nrtsync local stack is running (Ctrl-C stops it).",
        "",
        *(f"  {key:<22} {value}" for key, value in info.items()),
        "",
        "  The callout password is a throwaway generated for this run (a local secret in moto, nothing real)"
        + (f"; it is also in {state_file} (mode 0600)." if state_file else "."),
        "",
        "Send a callout:",
        f"  curl -sS -u '{info['callout_username']}:{info['callout_password']}' \\",
        "    -H 'Content-Type: application/json' -H \"Zuora-Notification-Id: $(uuidgen || date +%s%N)\" \\",
        f"    --data '{compact}' \\",
        f"    {info['callout_url']}",
        "",
        "Look at it with the operator CLI (from this directory, in another shell; --local reads the state file):",
        "  .venv/bin/nrtsync --local sessions",
        "  .venv/bin/nrtsync --local failures",
    ]
    if stack.standin is not None:
        lines += [
            "",
            "What reached the Salesforce stand-in:",
            f"  curl -sS --cacert {info['salesforce_ca_file']} \\",
            f"    {info['salesforce_url']}/__standin/records/Zuora__CustomerAccount__c",
        ]
    if stack.metrics_error:
        lines += ["", f"Metrics are OFF: the metrics function could not be imported ({stack.metrics_error})."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Runs the stack in the foreground until SIGINT or SIGTERM; 0 after a clean stop."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack = LocalDeployment(
            state_file=args.state_dir / STATE_FILE_NAME,
            sync_batch_window_seconds=args.batch_window,
            salesforce_latency_ms=args.salesforce_latency_ms,
            with_metrics=not args.no_metrics,
            metrics_interval_seconds=args.metrics_interval,
            salesforce_org=SalesforceOrg.from_environ(),
        )
        with stack:
            print(_banner(stack), flush=True)
            stop.wait()
    except LocalDeploymentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("nrtsync local stack stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
