"""Callouts at a steady rate through the local stack's HTTP front, to Salesforce's answer, by the product's rule.

Each callout's ``updatedDate`` is the instant just before its HTTP request is sent (``bench.workload.live_callout``),
so the history's ``e2e_ms`` (Salesforce's answer minus ``updatedDate``) is exactly "send to written". The sender
keeps the rate with a few threads, as Zuora's deliveries do not wait for each other.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from bench.common import progress, quiet_handlers
from bench.workload import Workload, live_callout, seed_parents
from nrtsync.domain.latency import percentile
from nrtsync_local.callouts import CalloutSender, send_paced
from nrtsync_local.stack import LocalDeployment

SENDERS = 8


def _seconds(value: int | None) -> float | None:
    return None if value is None else round(value / 1000, 3)


def _history(stack: LocalDeployment) -> tuple[list[int], list[int], int]:
    """(e2e_ms, sync_ms, written) from the history's minute summaries."""
    ddb = stack.client("dynamodb")
    e2e: list[int] = []
    sync: list[int] = []
    written = 0
    kwargs: dict[str, Any] = {
        "TableName": stack.resources.history_table,
        "FilterExpression": "#t = :minute",
        "ExpressionAttributeNames": {"#t": "type"},
        "ExpressionAttributeValues": {":minute": {"S": "minute"}},
    }
    while True:
        page = ddb.scan(**kwargs)
        for item in page["Items"]:
            written += int(item["written"]["N"])
            e2e += [int(v["N"]) for v in item.get("e2e_ms", {}).get("L", [])]
            sync += [int(v["N"]) for v in item.get("sync_ms", {}).get("L", [])]
        if "LastEvaluatedKey" not in page:
            return e2e, sync, written
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def bench_e2e(*, rate_per_second: float = 15.0, seconds: float = 40.0, latency_ms: int = 150) -> dict[str, Any]:
    count = int(rate_per_second * seconds)
    progress(f"e2e: starting the local stack (Salesforce latency {latency_ms} ms, the template's batching window)")
    with (
        quiet_handlers(),
        LocalDeployment(salesforce_latency_ms=latency_ms, with_metrics=False, stack_name="bench-e2e") as stack,
    ):
        assert stack.standin is not None  # noqa: S101 - no real org is configured here
        workload = Workload()
        seed_parents(stack.standin, workload)
        callouts = CalloutSender(stack.callout_url, stack.callout_auth)
        started = time.monotonic()
        progress(f"e2e: sending {count} callouts at {rate_per_second:g}/s for {seconds:g} s")
        sent = send_paced(
            callouts.post,
            lambda n: live_callout(n, workload.parents),
            rate=rate_per_second,
            count=count,
            workers=SENDERS,
        )
        callouts.close()
        statuses = Counter(s.status for s in sent)
        http_ms = [s.seconds * 1000 for s in sent]
        sent_for = time.monotonic() - started
        progress(f"e2e: sent in {sent_for:.1f} s; waiting for the queue to drain")
        stack.wait_until_drained(timeout=120)
        drained_after = time.monotonic() - started
        e2e, sync, written = _history(stack)
        stats = stack.poll_stats
        sizes = sorted(stats.batch_sizes)
    http_ms.sort()
    return {
        "callouts": count,
        "rate_per_second": rate_per_second,
        "seconds_sending": round(sent_for, 1),
        "seconds_until_drained": round(drained_after, 1),
        "http_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "written": written,
        "e2e_p50_s": _seconds(percentile(e2e, 50)),
        "e2e_p90_s": _seconds(percentile(e2e, 90)),
        "e2e_max_s": _seconds(max(e2e, default=None)),
        "sync_ms_p50": percentile(sync, 50),
        "sync_ms_p90": percentile(sync, 90),
        "callout_http_ms_p50": round(http_ms[len(http_ms) // 2], 1) if http_ms else None,
        "callout_http_ms_p90": round(http_ms[len(http_ms) * 90 // 100], 1) if http_ms else None,
        "invocations": stats.invocations,
        "batch_sizes": {
            "min": sizes[0] if sizes else None,
            "median": sizes[len(sizes) // 2] if sizes else None,
            "max": sizes[-1] if sizes else None,
            "all": stats.batch_sizes,
        },
        "retried": stats.retried,
        "salesforce_latency_ms": latency_ms,
    }
