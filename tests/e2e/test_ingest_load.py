"""Sustained callout load over the local HTTP front: every answer 200, every callout queued and synced.

A bounded rate (``RATE`` requests/s for ``SECONDS`` s from ``THREADS`` keep-alive sessions, loopback only),
paced so that a slow answer does not make the next ones burst. The latency of the HTTP answers is printed as
P50/P90/max by the product's percentile rule; only a generous bound is asserted, since the machine is shared.

Why 12/s and not 50/s: the local stack runs one function invocation at a time (``LocalDeployment._invoke`` holds
one lock, because the three functions share one process's Powertools logger and metrics), and a sync batch
holds it for about a second. Tried here: 50/s offered from 4 or 10 threads reached only 13-15/s, with P90
1.1-1.8 s spent waiting for that lock. That is the harness's ceiling, not the function's: in Lambda each
invocation has its own container, and API Gateway's stage throttle (ApiThrottleRateLimit, 50/s) is the bound.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from nrtsync.domain.latency import percentile
from nrtsync_local.stack import LocalDeployment
from tests.support.events import event_body, load_event

pytestmark = pytest.mark.e2e

RATE = 12  # requests per second, all threads together (see the module docstring for why not 50)
SECONDS = 12
THREADS = 3
P90_BOUND_MS = 2_000
ACCOUNTS = "Zuora__CustomerAccount__c"


@dataclass
class Results:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    sent_ids: list[str] = field(default_factory=list)

    def record(self, record_id: str, status: int | None, latency_ms: float, error: str | None = None) -> None:
        with self.lock:
            self.sent_ids.append(record_id)
            self.latencies_ms.append(latency_ms)
            if status is not None:
                self.statuses[status] = self.statuses.get(status, 0) + 1
            if error is not None:
                self.errors.append(error)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalDeployment]:
    local = LocalDeployment(
        stack_name=f"load{os.getpid()}",  # moto's state is per process: one name per stack
        sync_batch_window_seconds=0.5,
        with_metrics=False,
    )
    with local:
        yield local


def _callout_body(template: dict[str, object], record_id: str) -> bytes:
    document = dict(template)
    document["id"] = record_id
    # Linked to a Salesforce Account: Zuora 360 syncs only such accounts (an unlinked one is held).
    document["fields"] = {
        "Name": f"Load {record_id[:8]}",
        "AccountNumber": record_id[:10],
        "CrmId": "0015g00000XyZ12AAB",
    }
    return json.dumps(document).encode()


def _sender(stack: LocalDeployment, results: Results, start: float, offset: float, count: int) -> None:
    template = json.loads(event_body(load_event("callout_account")))
    interval = THREADS / RATE
    with requests.Session() as http:
        http.trust_env = False  # loopback only, whatever proxy the shell names
        for n in range(count):
            due = start + offset + n * interval
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # real time: the load goes to a real HTTP server at a set rate
            record_id = uuid.uuid4().hex
            began = time.perf_counter()
            try:
                answer = http.post(
                    stack.callout_url,
                    data=_callout_body(template, record_id),
                    headers={"Content-Type": "application/json", "Zuora-Notification-Id": f"load-{record_id}"},
                    auth=stack.callout_auth,
                    timeout=10,
                )
            except requests.RequestException as exc:
                results.record(record_id, None, (time.perf_counter() - began) * 1000, repr(exc))
                continue
            latency = (time.perf_counter() - began) * 1000
            error = None if answer.status_code == 200 else f"{answer.status_code}: {answer.text[:200]}"
            results.record(record_id, answer.status_code, latency, error)


def test_a_sustained_callout_rate_is_all_200_and_every_callout_reaches_salesforce(stack: LocalDeployment) -> None:
    # Given
    assert stack.standin is not None
    results = Results()
    per_thread = RATE * SECONDS // THREADS
    start = time.monotonic() + 0.2
    threads = [
        threading.Thread(target=_sender, args=(stack, results, start, i / RATE, per_thread), name=f"load-{i}")
        for i in range(THREADS)
    ]

    # When
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + 30)
    elapsed = time.monotonic() - start
    stack.wait_until_drained(timeout=60)

    # Then
    total = per_thread * THREADS
    p50, p90 = percentile(results.latencies_ms, 50), percentile(results.latencies_ms, 90)
    worst = max(results.latencies_ms)
    print(
        f"\ningest load: {total} callouts in {elapsed:.1f} s ({total / elapsed:.1f}/s, {THREADS} threads); "
        f"HTTP answer latency P50 {p50:.1f} ms, P90 {p90:.1f} ms, max {worst:.1f} ms; statuses {results.statuses}"
    )
    assert not any(t.is_alive() for t in threads)
    assert results.errors == [], results.errors[:5]
    assert results.statuses == {200: total}
    synced = {record["Zuora__External_Id__c"] for record in stack.standin.records(ACCOUNTS)}
    missing = set(results.sent_ids) - synced
    assert not missing, f"{len(missing)} of {total} callouts never reached Salesforce"
    assert p90 is not None
    assert p90 < P90_BOUND_MS
