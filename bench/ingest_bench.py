"""The ingest handler in-process: API Gateway event in, change on a queue, per request.

Measured with an in-memory queue (our code: event parsing, Basic auth, validation, serialisation, logging and
EMF), and for reference with moto's in-process SQS (``mock_aws``) behind the production SQS adapter.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from typing import Any

from bench.common import REGION, progress, quiet_handlers
from nrtsync.app.ingest import build_ingest
from nrtsync.ports.queue import ChangeQueue
from nrtsync_fakes.queue import MemoryQueue
from nrtsync_fakes.secrets import MemorySecrets
from nrtsync_local.poller import LocalContext

EVENTS = ("callout_account", "callout_subscription", "callout_invoice", "callout_payment")
CALLOUT_SECRET = {"username": "zuora-callout", "password": "local-test-only-password"}  # the events' test values


def load_events() -> list[dict[str, Any]]:
    from bench.common import REPO_ROOT  # noqa: PLC0415

    return [json.loads((REPO_ROOT / "events" / f"{name}.json").read_text()) for name in EVENTS]


def _fresh(event: dict[str, Any]) -> dict[str, Any]:
    """The event with a new notification id, as each real delivery has its own."""
    event = copy.deepcopy(event)
    notification = str(uuid.uuid4())
    event["headers"]["Zuora-Notification-Id"] = notification
    event["multiValueHeaders"]["Zuora-Notification-Id"] = [notification]
    return event


def _measure(queue: ChangeQueue, requests: int, warmup: int) -> dict[str, Any]:
    from functions.ingest import app  # noqa: PLC0415
    from nrtsync.services.ingest.settings import IngestSettings  # noqa: PLC0415

    settings = IngestSettings.from_env()
    app.endpoint.use(
        build_ingest(settings, queue=queue, secrets=MemorySecrets({settings.callout_secret_id: CALLOUT_SECRET}))
    )
    templates = load_events()
    events = [_fresh(templates[i % len(templates)]) for i in range(requests + warmup)]
    context = LocalContext(function_name="IngestFunction", timeout_seconds=10, memory_limit_in_mb=256)
    samples: list[float] = []
    statuses: dict[int, int] = {}
    try:
        with quiet_handlers():
            for n, event in enumerate(events):
                started = time.perf_counter_ns()
                answer = app.lambda_handler(event, context)
                elapsed = time.perf_counter_ns() - started
                statuses[answer["statusCode"]] = statuses.get(answer["statusCode"], 0) + 1
                if n >= warmup:
                    samples.append(elapsed / 1000)
    finally:
        app.endpoint.use(None)
    if set(statuses) != {200}:
        raise RuntimeError(f"ingest answered {statuses}; the bench expects only 200")
    samples.sort()
    return {
        "requests": len(samples),
        "median_us": round(samples[len(samples) // 2]),
        "p90_us": round(samples[len(samples) * 90 // 100]),
        "min_us": round(samples[0]),
    }


def bench_ingest(*, requests: int = 2_000, moto_requests: int = 500) -> dict[str, Any]:
    from moto import mock_aws  # noqa: PLC0415

    from nrtsync.adapters.aws.sqs import SqsChangeQueue  # noqa: PLC0415

    progress(f"ingest: {requests} requests with an in-memory queue")
    in_memory = _measure(MemoryQueue(), requests, warmup=100)
    progress(f"ingest: {moto_requests} requests with moto's in-process SQS (reference)")
    with mock_aws():
        import boto3  # noqa: PLC0415

        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="bench-ingest")["QueueUrl"]
        on_moto = _measure(SqsChangeQueue(url, client=sqs), moto_requests, warmup=20)
    return {"in_memory_queue": in_memory, "moto_sqs_in_process": on_moto}
