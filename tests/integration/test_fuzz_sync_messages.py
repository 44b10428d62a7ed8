"""Property-based malformed SQS messages through the sync handler (moto in-process DynamoDB, in-memory Salesforce).

The property: for a well-formed SQS event whatever its bodies, the handler returns a batch response (never
raises), and every message ends either on the failure list (MALFORMED_MESSAGE for a body that is not a
QueuedChange, MAPPING_ERROR for a change the mapping cannot turn into a record), or in Salesforce, or in
``batchItemFailures``: none is acknowledged silently.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from pydantic import ValidationError

from functions.sync import app
from nrtsync.domain.mapping import load_mapping
from nrtsync.domain.models.callout import QueuedChange
from tests.support.lambda_context import FakeLambdaContext
from tests.support.sync_world import HISTORY_TABLE, SyncWorld, create_tables

MAPPING = load_mapping()
FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

# What an SQS message body can hold: SQS refuses other characters, so a Lambda never sees them.
sqs_text = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=["Cs"], exclude_characters="".join(map(chr, range(0x20))) + "\ufffe\uffff"
    )
    | st.sampled_from(["\t", "\n", "\r"]),
    max_size=200,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | sqs_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(sqs_text, inner, max_size=3),
    max_leaves=10,
)


def valid_change(object_type: str = "Account", **fields: Any) -> dict[str, Any]:
    record_id = uuid.uuid4().hex
    change = QueuedChange(
        object_type=object_type,
        record_id=record_id,
        updated_date=T0,
        fields=fields or {"Name": f"Customer {record_id[:6]}"},
        notification_id=f"n-{record_id}",
        received_at=T0 + timedelta(seconds=1),
    )
    document: dict[str, Any] = json.loads(change.model_dump_json())
    return document


@st.composite
def bodies(draw: st.DrawFn) -> str:
    # The kinds that reach Salesforce cost several moto DynamoDB calls each; the unreadable kinds are cheap.
    kind = draw(
        st.sampled_from(["text", "json", "missing", "wrong-type", "extra", "version"] * 2 + ["valid", "unmappable"])
    )
    event(f"body: {kind}")
    if kind == "text":
        return draw(sqs_text)
    if kind == "json":
        return json.dumps(draw(json_values))
    document = valid_change()
    if kind == "missing":
        del document[draw(st.sampled_from(sorted(document)))]
    elif kind == "wrong-type":
        document[draw(st.sampled_from(sorted(document)))] = draw(json_values)
    elif kind == "extra":
        document[draw(sqs_text.filter(lambda k: k not in document))] = draw(json_values)
    elif kind == "version":
        document["schema_version"] = draw(st.integers().filter(lambda v: v != 1) | sqs_text)
    elif kind == "unmappable" and draw(st.booleans()):
        document["object_type"] = draw(st.sampled_from(["Nope", "Contact", "account"]))
    elif kind == "unmappable":
        # Parses as a change, but a number field holds no number: the mapping refuses it (MAPPING_ERROR).
        document["fields"] = {"Name": "Acme", "Balance": draw(st.sampled_from(["abc", "1,5", "NaN?", "--1"]))}
    return json.dumps(document, ensure_ascii=draw(st.booleans()))


def sqs_record(body: str, receive_count: int) -> dict[str, Any]:
    message_id = str(uuid.uuid4())
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1795694401250",
            "SenderId": "AROAEXAMPLE:nrtsync-IngestFunction",
            "ApproximateFirstReceiveTimestamp": "1795694404000",
        },
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:nrtsync-CalloutQueue",
        "awsRegion": "eu-west-1",
    }


batches = st.lists(
    st.tuples(bodies(), st.integers(min_value=1, max_value=12)).map(lambda pair: sqs_record(*pair)),
    min_size=1,
    max_size=5,
)


@dataclass
class Fuzzed:
    world: SyncWorld
    dynamodb: Any

    def failure(self, sk: str) -> dict[str, Any] | None:
        """The failure list's entry (a GetItem: a Query would sort the ever-growing partition in moto)."""
        response = self.dynamodb.get_item(TableName=HISTORY_TABLE, Key={"pk": {"S": "FAILURE"}, "sk": {"S": sk}})
        item: dict[str, Any] | None = response.get("Item")
        return item


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[Fuzzed]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        create_tables(client)
        world = SyncWorld(dynamodb=client)
        app.service.use(world.service())
        yield Fuzzed(world=world, dynamodb=client)
        app.service.use(None)


def _parsed(body: str) -> QueuedChange | None:
    try:
        return QueuedChange.model_validate_json(body)
    except ValidationError:
        return None


@FUZZ
@given(records=batches)
def test_no_message_is_acknowledged_silently(fuzzed: Fuzzed, records: list[dict[str, Any]]) -> None:
    # Given a well-formed SQS event whose bodies may be anything
    sqs_event = {"Records": copy.deepcopy(records)}

    # When
    response = app.lambda_handler(sqs_event, FakeLambdaContext())

    # Then a batch response that names only messages of the batch
    assert set(response) == {"batchItemFailures"}
    retried = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    assert retried <= {r["messageId"] for r in records}
    changes = {r["messageId"]: _parsed(r["body"]) for r in records}
    keys = [c.record_key for c in changes.values() if c is not None]
    for record in records:
        message_id = record["messageId"]
        change = changes[message_id]
        if message_id in retried:
            event("retried")
            continue
        if change is None:
            parked = fuzzed.failure(f"(unreadable)#{message_id}#0")
            assert parked is not None, f"{message_id} (unreadable) was acknowledged silently"
            assert parked["error_code"] == {"S": "MALFORMED_MESSAGE"}
            assert parked["body"] == {"S": record["body"]}
            event("parked MALFORMED_MESSAGE")
            continue
        if keys.count(change.record_key) > 1:
            continue  # coalesced with another message of the batch: superseded or duplicate, by design
        sobject = MAPPING.objects.get(change.object_type)
        in_salesforce = sobject is not None and change.record_id in fuzzed.world.salesforce.records.get(
            sobject.sobject, {}
        )
        parked_change = fuzzed.failure(f"{change.object_type}#{change.record_id}#{change.version}")
        assert in_salesforce or parked_change, f"{message_id} ({change.record_key}) was acknowledged silently"
        if parked_change is not None:
            assert not in_salesforce
            # A body the mapping cannot use, or a billing account without its CRM Account (the org refuses it)
            code = parked_change["error_code"]["S"]
            assert code in {"MAPPING_ERROR", "REQUIRED_FIELD_MISSING"}
            event(f"parked {code}")
        else:
            event("written")


def test_a_record_without_its_receive_count_is_refused_as_a_whole() -> None:
    # Not a bad body but a malformed event: Lambda retries the whole batch, nothing is acknowledged.
    record = sqs_record(json.dumps(valid_change()), 1)
    del record["attributes"]["ApproximateReceiveCount"]

    with pytest.raises(ValueError, match="ApproximateReceiveCount"):
        app.lambda_handler({"Records": [record]}, FakeLambdaContext())
