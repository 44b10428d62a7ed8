"""`make demo`: the sample Zuora callouts in ``events/`` through the real ingest handler, against moto on 127.0.0.1.

Today this covers the ingest path only (callout -> API Gateway event -> ingest function -> SQS). Each step is its
own function so the rest of the pipeline can be added step by step: start the server, create the resources, set
the environment, send the callouts, read the queue, print, judge.

    .venv/bin/python -m nrtsync_local.demo [--verbose]

Exit status 0 only if every callout expected to be accepted was queued exactly once and every other one refused.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from moto.server import ThreadedMotoServer

if TYPE_CHECKING:
    from nrtsync.models.callout import QueuedChange

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
REGION = "eu-west-1"
QUEUE_NAME = "nrtsync-demo-callouts"
DLQ_NAME = "nrtsync-demo-callouts-dlq"
SECRET_ID = "nrtsync-demo/callout"  # noqa: S105 - the secret's name, not a secret
# The test credentials that the sample events carry (see docs/CALLOUTS.md); never a real tenant's.
CALLOUT_SECRET = {"username": "zuora-callout", "password": "local-test-only-password"}

# The sample events that must be refused, with the answer each must get; every other one must be queued.
EXPECTED_REFUSALS = {"callout_unauthenticated.json": 401, "callout_unmapped_object.json": 422}


@dataclass(frozen=True)
class IngestResources:
    endpoint_url: str
    queue_url: str
    dlq_url: str
    secret_id: str


@dataclass(frozen=True)
class CalloutResult:
    """What the ingest function answered to one sample event."""

    event: str
    notification_id: str | None
    status: int
    reason: str
    detail: str

    @property
    def expected_status(self) -> int:
        return EXPECTED_REFUSALS.get(self.event, 200)


@contextmanager
def moto_server() -> Iterator[str]:
    """moto in server mode on 127.0.0.1 and a free port, stopped on the way out; yields its URL."""
    # werkzeug logs every request to stderr unless told otherwise; the demo's tables say what matters.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def configure_environment(endpoint_url: str) -> None:
    """Point boto3 at the local server with throw-away credentials, whatever the shell had set."""
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "demo",
            "AWS_SECRET_ACCESS_KEY": "demo",
            "AWS_SESSION_TOKEN": "demo",
            "POWERTOOLS_SERVICE_NAME": "nrtsync-ingest",
            "POWERTOOLS_METRICS_NAMESPACE": "NrtSyncDemo",
            "POWERTOOLS_TRACE_DISABLED": "1",
        }
    )
    os.environ.pop("AWS_PROFILE", None)


def create_ingest_resources(endpoint_url: str) -> IngestResources:
    """The callout queue with its dead-letter queue, and the callout secret."""
    sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name=REGION)
    dlq_url = sqs.create_queue(QueueName=DLQ_NAME)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
    queue_url = sqs.create_queue(QueueName=QUEUE_NAME, Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    secrets = boto3.client("secretsmanager", endpoint_url=endpoint_url, region_name=REGION)
    secrets.create_secret(Name=SECRET_ID, SecretString=json.dumps(CALLOUT_SECRET))
    return IngestResources(endpoint_url=endpoint_url, queue_url=queue_url, dlq_url=dlq_url, secret_id=SECRET_ID)


def configure_ingest(resources: IngestResources) -> None:
    """The ingest function's own environment, as the stack sets it."""
    os.environ["CALLOUT_QUEUE_URL"] = resources.queue_url
    os.environ["CALLOUT_SECRET_ID"] = resources.secret_id


@dataclass
class _LambdaContext:
    function_name: str = "nrtsync-ingest"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:nrtsync-ingest"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"


def callout_event_paths(events_dir: Path = EVENTS_DIR) -> list[Path]:
    """Every sample callout event, in name order."""
    return sorted(events_dir.glob("callout_*.json"))


def send_callouts(paths: Sequence[Path], function_output: io.StringIO) -> list[CalloutResult]:
    """Invoke the ingest handler once per event, as API Gateway would; its logs and metrics go to function_output."""
    # Imported here: the handler's modules read the environment when first imported, as in Lambda.
    from functions.ingest import app  # noqa: PLC0415
    from nrtsync.observability import logger  # noqa: PLC0415
    from nrtsync.settings import ingest_settings  # noqa: PLC0415

    ingest_settings.cache_clear()
    app.use_endpoint(None)
    results = []
    with _function_output_to(function_output, logger.handlers):
        for number, path in enumerate(paths, start=1):
            event: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            context = _LambdaContext(aws_request_id=f"00000000-0000-4000-8000-{number:012d}")
            response = app.lambda_handler(event, context)
            results.append(_result_of(path.name, event, response))
    return results


def _result_of(name: str, event: dict[str, Any], response: dict[str, Any]) -> CalloutResult:
    answer = json.loads(response.get("body") or "{}")
    if response["statusCode"] == 200:
        reason, detail = "accepted", f"message {answer.get('messageId', '?')}"
    else:
        reason = str(answer.get("error", "?"))
        problems = answer.get("errors") or []
        detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems) or str(answer.get("message", ""))
    headers = {key.lower(): value for key, value in (event.get("headers") or {}).items()}
    return CalloutResult(name, headers.get("zuora-notification-id"), response["statusCode"], reason, detail)


@contextmanager
def _function_output_to(buffer: io.StringIO, handlers: Sequence[logging.Handler]) -> Iterator[None]:
    # The logger's handler keeps the stdout it was built with; EMF metrics are printed to the current one.
    streams = [(h, h.stream) for h in handlers if isinstance(h, logging.StreamHandler)]
    for handler, _ in streams:
        handler.stream = buffer
    try:
        with redirect_stdout(buffer):
            yield
    finally:
        for handler, stream in streams:
            handler.stream = stream


def receive_all(queue_url: str, endpoint_url: str) -> list[QueuedChange]:
    """Everything on the queue, parsed as the sync function will parse it (and deleted, as it would be)."""
    from nrtsync.models.callout import QueuedChange  # noqa: PLC0415

    sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name=REGION)
    changes: list[QueuedChange] = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            changes.append(QueuedChange.model_validate_json(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return changes


def judge(results: Sequence[CalloutResult], changes: Sequence[QueuedChange]) -> list[str]:
    """What went wrong, if anything: a valid callout not queued exactly once, or an invalid one not refused."""
    queued = Counter(change.notification_id for change in changes)
    problems = []
    for result in results:
        count = queued.pop(result.notification_id, 0) if result.notification_id else 0
        if result.expected_status == 200 and (result.status != 200 or count != 1):
            problems.append(f"{result.event}: expected queued once, got HTTP {result.status} and {count} message(s)")
        if result.expected_status != 200 and (result.status != result.expected_status or count):
            problems.append(
                f"{result.event}: expected HTTP {result.expected_status} and nothing queued, "
                f"got HTTP {result.status} and {count} message(s)"
            )
    problems.extend(f"unexpected message for notification {nid!r}" for nid in queued.elements())
    return problems


def print_callouts(results: Sequence[CalloutResult]) -> None:
    print("Callouts sent through the ingest function")
    rows = [("event", "expect", "HTTP", "reason", "detail")]
    rows += [(r.event, str(r.expected_status), str(r.status), r.reason, r.detail) for r in results]
    _print_table(rows, right_aligned={1, 2})


def print_queued(changes: Sequence[QueuedChange], queue_url: str) -> None:
    print(f"\nQueued on {queue_url.rsplit('/', 1)[-1]}: {len(changes)} change(s)")
    rows = [("object", "id", "updatedDate (UTC)", "notification id")]
    rows += [
        (c.object_type, c.record_id, c.updated_date.isoformat(timespec="seconds"), c.notification_id) for c in changes
    ]
    _print_table(rows)


def print_verdict(problems: Sequence[str]) -> None:
    if not problems:
        print("\nOK: every valid callout was queued exactly once, every invalid one was refused.")
        return
    print("\nFAILED:")
    for problem in problems:
        print(f"  - {problem}")


def _print_table(rows: Sequence[tuple[str, ...]], right_aligned: set[int] | None = None) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for number, row in enumerate(rows):
        cells = [
            cell.rjust(width) if i in (right_aligned or set()) else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  " + "  ".join(cells).rstrip())
        if number == 0:
            print("  " + "  ".join("-" * width for width in widths))


def main(argv: Sequence[str] | None = None) -> int:
    verbose = "--verbose" in (sys.argv[1:] if argv is None else argv)
    paths = callout_event_paths()
    if not paths:
        print(f"no callout events in {EVENTS_DIR}", file=sys.stderr)
        return 1
    function_output = io.StringIO()
    with moto_server() as endpoint_url:
        print(f"moto server at {endpoint_url}\n")
        configure_environment(endpoint_url)
        resources = create_ingest_resources(endpoint_url)
        configure_ingest(resources)
        results = send_callouts(paths, function_output)
        changes = receive_all(resources.queue_url, endpoint_url)
    print_callouts(results)
    print_queued(changes, resources.queue_url)
    if verbose:
        print("\nThe function's logs and metrics:\n" + function_output.getvalue())
    problems = judge(results, changes)
    print_verdict(problems)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
