"""Sync service vs the naive design, on the same records, against the same HTTPS Salesforce stand-in.

* sync: ``functions.sync.app.lambda_handler`` with an SQS event of 200 changes, the real ``SyncService`` and
  ``SimpleSalesforceAdapter`` (sObject Collections, one call per object type per 200 records). State and
  history either in memory (``nrtsync_fakes.state``) or in moto's DynamoDB in server mode (as the local stack has it).
* baseline: one ``simple_salesforce`` upsert per record (``sf.<SObject>.upsert("ExtField/value", data)``),
  sequential, the same mapped records, no state and no history at all (which flatters it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests
from simple_salesforce.api import Salesforce

from bench.common import progress, quiet_handlers, summary
from bench.workload import BATCH, Workload, baseline_payloads, sqs_event
from nrtsync.adapters.aws.history import DynamoHistoryWriter
from nrtsync.adapters.aws.sqs import SqsChangeQueue
from nrtsync.adapters.aws.state import DynamoVersionStore
from nrtsync.app.shared import build_salesforce
from nrtsync.app.sync import build_sync
from nrtsync.domain.mapping import cached_mapping
from nrtsync.domain.models.salesforce import SalesforceCredentials
from nrtsync.ports.history import HistoryWriter
from nrtsync.ports.queue import RetryScheduler
from nrtsync.ports.state import VersionStore
from nrtsync.services.sync.service import SyncService
from nrtsync.services.sync.settings import SyncSettings
from nrtsync_fakes.history import in_memory_history
from nrtsync_fakes.queue import FakeRetryScheduler
from nrtsync_fakes.state import InMemoryVersionStore
from nrtsync_local.poller import LocalContext
from nrtsync_local.standin.process import StandinClient

if TYPE_CHECKING:
    from nrtsync_local.aws import LocalResources

SYNC_TIMEOUT_SECONDS = 60.0  # the template's SyncFunction Timeout


def credentials_of(standin: StandinClient) -> SalesforceCredentials:
    return SalesforceCredentials.model_validate(
        {
            "auth_flow": "client_credentials",
            "login_url": standin.url,
            "client_id": standin.client_id,
            "client_secret": standin.client_secret,
        }
    )


def sync_settings(**overrides: str) -> SyncSettings:
    env = {k: v for k, v in os.environ.items() if k.isupper()}
    return SyncSettings.from_env(env | overrides)


def build_service(
    standin: StandinClient,
    settings: SyncSettings,
    *,
    state: VersionStore,
    history: HistoryWriter,
    retries: RetryScheduler,
) -> SyncService:
    """The production wiring with the given state/history/retries and a Salesforce session that trusts the stand-in."""
    credentials = credentials_of(standin)
    salesforce = build_salesforce(settings, credentials=lambda: credentials, session=standin.session())
    return build_sync(settings, salesforce=salesforce, state=state, history=history, retries=retries)


@dataclass
class SyncRun:
    """One timed invocation of the sync handler on a full batch."""

    seconds: float
    records: int
    api_calls: int
    retried: int

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds


def invoke_sync(standin: StandinClient, workload: Workload) -> SyncRun:
    """One full batch through the handler (whatever service is installed); API calls counted by the stand-in."""
    from functions.sync import app  # noqa: PLC0415 - after the environment is prepared

    event = sqs_event(workload.batch())
    before = standin.stats()["api_calls"]
    context = LocalContext(function_name="SyncFunction", timeout_seconds=SYNC_TIMEOUT_SECONDS, memory_limit_in_mb=512)
    with quiet_handlers():
        started = time.perf_counter()
        answer = app.lambda_handler(event, context)
        elapsed = time.perf_counter() - started
    calls = standin.stats()["api_calls"] - before
    retried = len(answer.get("batchItemFailures", []))
    if retried:
        raise RuntimeError(f"the sync handed {retried} of {len(event['Records'])} changes back; the bench expects none")
    return SyncRun(seconds=elapsed, records=len(event["Records"]), api_calls=calls, retried=retried)


@dataclass
class Baseline:
    """The naive design: one simple-salesforce upsert per record, with a token fetched once."""

    standin: StandinClient
    api_version: str
    _sf: Salesforce | None = None
    _session: requests.Session = field(init=False)

    def __post_init__(self) -> None:
        self._session = self.standin.session()

    def connect(self) -> None:
        credentials = credentials_of(self.standin)
        form = {
            "grant_type": "client_credentials",
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret or "",
        }
        token = self._session.post(credentials.token_url, data=form, timeout=20).json()
        self._sf = Salesforce(
            instance_url=token["instance_url"],
            session_id=token["access_token"],
            session=self._session,
            version=self.api_version,
        )

    def run(self, workload: Workload) -> SyncRun:
        if self._sf is None:
            self.connect()
        sf = self._sf
        assert sf is not None  # noqa: S101 - connect() set it
        payloads = baseline_payloads(cached_mapping(None), workload.batch())
        before = self.standin.stats()["api_calls"]
        started = time.perf_counter()
        for sobject, ext_field, ext_value, body in payloads:
            status = getattr(sf, sobject).upsert(f"{ext_field}/{ext_value}", body)
            if status not in (200, 201, 204):
                raise RuntimeError(f"baseline upsert of {sobject} {ext_value} answered {status}")
        elapsed = time.perf_counter() - started
        calls = self.standin.stats()["api_calls"] - before
        return SyncRun(seconds=elapsed, records=len(payloads), api_calls=calls, retried=0)

    def close(self) -> None:
        self._session.close()


def _rates(runs: list[SyncRun]) -> dict[str, Any]:
    records = sum(r.records for r in runs)
    if not runs:
        return {"records_per_second": None, "seconds_per_batch": None, "api_calls": 0, "records": 0}
    return {
        "records_per_second": summary([r.records_per_second for r in runs], 1),
        "seconds_per_batch": summary([r.seconds for r in runs], 3),
        "api_calls": sum(r.api_calls for r in runs),
        "records": records,
        "api_calls_per_record": round(sum(r.api_calls for r in runs) / records, 4),
    }


def in_memory_service(standin: StandinClient, settings: SyncSettings) -> SyncService:
    history, _ = in_memory_history()
    return build_service(standin, settings, state=InMemoryVersionStore(), history=history, retries=FakeRetryScheduler())


def compare_at_latency(
    standin: StandinClient, latency_ms: int, *, sync_reps: int, baseline_reps: int, workload: Workload
) -> dict[str, Any]:
    """Sync (in-memory state/history) and baseline on the same batches, interleaved, at one stand-in latency."""
    from functions.sync import app  # noqa: PLC0415

    settings = sync_settings()
    standin.set_faults(latency_ms=latency_ms)
    app.service.use(in_memory_service(standin, settings))
    baseline = Baseline(standin, settings.salesforce_api_version)
    try:
        invoke_sync(standin, workload)  # warm: token, TLS connection, records exist in Salesforce
        baseline.connect()
        sync_runs: list[SyncRun] = []
        baseline_runs: list[SyncRun] = []
        for rep in range(max(sync_reps, baseline_reps)):
            if rep < sync_reps:
                sync_runs.append(invoke_sync(standin, workload))
            if rep < baseline_reps:
                baseline_runs.append(baseline.run(workload))
                progress(
                    f"  latency {latency_ms} ms, rep {rep + 1}: sync {sync_runs[-1].records_per_second:.0f} rec/s, "
                    f"baseline {baseline_runs[-1].records_per_second:.1f} rec/s"
                )
    finally:
        baseline.close()
        app.service.use(None)
        standin.set_faults(latency_ms=0)
    sync, base = _rates(sync_runs), _rates(baseline_runs)
    result = {"latency_ms": latency_ms, "sync_in_memory_state": sync, "baseline": base}
    if sync_runs and baseline_runs:
        paired = [s.records_per_second / b.records_per_second for s, b in zip(sync_runs, baseline_runs, strict=False)]
        result |= {
            "speedup_of_medians": round(sync["records_per_second"]["median"] / base["records_per_second"]["median"], 1),
            "speedup_paired_runs": [round(p, 1) for p in paired],
            "api_call_ratio": round(base["api_calls_per_record"] / sync["api_calls_per_record"], 1),
        }
    return result


@contextmanager
def moto_resources(standin: StandinClient, stack: str) -> Iterator[LocalResources]:
    """moto in server mode with the template's tables and queue; AWS_ENDPOINT_URL points there meanwhile."""
    from nrtsync_local.aws import MotoServer, provision  # noqa: PLC0415 - keeps moto out of the RSS child

    server = MotoServer()
    url = server.start()
    saved = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = url
    try:
        yield provision(
            url,
            callout_credentials={"username": "bench", "password": "bench-password"},
            salesforce_credentials={
                "auth_flow": "client_credentials",
                "login_url": standin.url,
                "client_id": standin.client_id,
                "client_secret": standin.client_secret,
            },
            stack=stack,  # moto keeps its state per process: one name per server started
        )
    finally:
        if saved is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = saved
        server.stop()


def sync_on_moto(standin: StandinClient, latency_ms: int, *, reps: int, workload: Workload) -> dict[str, Any]:
    """The same sync with DynamoDB state/history (production adapters and clients) on moto in server mode."""
    from functions.sync import app  # noqa: PLC0415

    standin.set_faults(latency_ms=latency_ms)
    try:
        with moto_resources(standin, f"bench-sync-{latency_ms}ms") as res:
            settings = sync_settings(
                CALLOUT_QUEUE_URL=res.queue_url, SYNC_STATE_TABLE=res.state_table, SYNC_HISTORY_TABLE=res.history_table
            )
            # The production adapters build their own boto3 clients (their config), pointed at moto by the env.
            service = build_service(
                standin,
                settings,
                state=DynamoVersionStore(settings.state_table),
                history=DynamoHistoryWriter(settings.history_table, ttl_days=settings.history_ttl_days),
                retries=SqsChangeQueue(settings.queue_url),
            )
            app.service.use(service)
            invoke_sync(standin, workload)
            runs = []
            for rep in range(reps):
                runs.append(invoke_sync(standin, workload))
                progress(
                    f"  moto state/history, latency {latency_ms} ms, rep {rep + 1}: {runs[-1].seconds:.2f} s/batch"
                )
    finally:
        app.service.use(None)
        standin.set_faults(latency_ms=0)
    return {"latency_ms": latency_ms, "sync_moto_state": _rates(runs)}


def single_type_batch(standin: StandinClient) -> dict[str, Any]:
    """API calls for a full batch of one object type (200 subscriptions): the floor of the design."""
    from functions.sync import app  # noqa: PLC0415

    workload = Workload(mix=(("Subscription", 1),))
    app.service.use(in_memory_service(standin, sync_settings()))
    try:
        invoke_sync(standin, workload)
        run = invoke_sync(standin, workload)
    finally:
        app.service.use(None)
    return {"records": run.records, "api_calls": run.api_calls, "api_calls_per_record": run.api_calls / run.records}


@contextmanager
def shared_pool() -> Iterator[None]:
    """Experiment: ``nrtsync.services.sync.leases.parallel`` on one long-lived pool instead of a new pool per call."""
    import nrtsync.services.sync.leases as sync_module  # noqa: PLC0415

    original = sync_module.parallel
    pool = ThreadPoolExecutor(max_workers=16)

    def parallel(fn: Callable[[Any], Any], items: Any) -> list[Any]:
        return [fn(i) for i in items] if len(items) <= 1 else list(pool.map(fn, items))

    sync_module.parallel = parallel
    try:
        yield
    finally:
        sync_module.parallel = original
        pool.shutdown()


def pool_experiment(standin: StandinClient, *, reps: int, workload: Workload) -> dict[str, Any]:
    """Per-call pools (as shipped) vs one shared pool, interleaved, at 0 ms, in-memory state."""
    from functions.sync import app  # noqa: PLC0415

    app.service.use(in_memory_service(standin, sync_settings()))
    shipped: list[SyncRun] = []
    shared: list[SyncRun] = []
    try:
        invoke_sync(standin, workload)
        for _ in range(reps):
            shipped.append(invoke_sync(standin, workload))
            with shared_pool():
                shared.append(invoke_sync(standin, workload))
    finally:
        app.service.use(None)
    a, b = _rates(shipped), _rates(shared)
    return {
        "per_call_pools_records_per_second": a["records_per_second"],
        "shared_pool_records_per_second": b["records_per_second"],
        "speedup": round(b["records_per_second"]["median"] / a["records_per_second"]["median"], 2),
    }


def time_state_calls(make: Callable[[], VersionStore], n: int = 200) -> float:
    """Median milliseconds of one claim+commit pair, sequential (what one DynamoDB round trip costs here)."""
    store = make()
    samples = []
    for i in range(n):
        key, version = f"Bench#{i}", f"{i:017d}.0"
        started = time.perf_counter()
        store.claim(key, version, f"h{i}", owner="bench", lease_until_ms=int(time.time() * 1000) + 60_000)
        store.commit(key, version, f"h{i}", owner="bench", salesforce_id=None)
        samples.append((time.perf_counter() - started) * 1000 / 2)
    samples.sort()
    return round(samples[len(samples) // 2], 3)


__all__ = ["BATCH", "compare_at_latency", "in_memory_service", "invoke_sync", "sync_on_moto"]
