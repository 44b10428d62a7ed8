"""The sync handler: an SQS event in, batchItemFailures out, with the service's collaborators faked."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from functions.sync import app
from tests.support.lambda_context import FakeLambdaContext as LambdaContext
from tests.support.sync_world import SyncWorld

EVENT = json.loads((Path(__file__).parents[2] / "events" / "sqs_callout_batch.json").read_text())


@pytest.fixture
def world(world: SyncWorld) -> Iterator[SyncWorld]:
    # The handler's service is this world's.
    app.service.use(world.service())
    yield world
    app.service.use(None)


def test_the_sample_batch_is_written_parents_first(world: SyncWorld, caplog: pytest.LogCaptureFixture) -> None:
    # Given the sample SQS batch (an account, its subscription and its invoice)
    # When the handler runs
    response = app.lambda_handler(EVENT, LambdaContext())

    # Then nothing is retried, the account went first, and one session line was logged
    assert response == {"batchItemFailures": []}
    assert world.salesforce.calls[0] == ("Zuora__CustomerAccount__c", 1)
    assert {c[0] for c in world.salesforce.calls} == {
        "Zuora__CustomerAccount__c",
        "Zuora__Subscription__c",
        "Zuora__ZInvoice__c",
    }
    sessions = [r for r in caplog.records if r.getMessage() == "sync session"]
    assert len(sessions) == 1
    assert sessions[0].written == 3  # type: ignore[attr-defined]


def test_a_record_that_must_wait_is_reported_by_message_id(world: SyncWorld) -> None:
    # Given a batch of only the subscription (its account is not in Salesforce)
    event: dict[str, Any] = copy.deepcopy(EVENT)
    event["Records"] = [event["Records"][1]]

    # When the handler runs
    response = app.lambda_handler(event, LambdaContext())

    # Then that message is a batch item failure, so SQS keeps it
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_an_event_that_is_not_an_sqs_batch_is_refused(world: SyncWorld) -> None:
    # A malformed event is Lambda's problem to retry, not a batch to acknowledge
    with pytest.raises(ValueError, match="Records"):
        app.lambda_handler({"Records": [{"messageId": 1}]}, LambdaContext())
