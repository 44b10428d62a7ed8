"""Dates as Zuora renders them by the communication profile's locale: read where unambiguous, refused where not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws
from pydantic import ValidationError

import functions.ingest.app as ingest_app
from nrtsync.app.ingest import ingest_settings
from nrtsync.domain.mapping import MappingError, coerce_value, load_mapping
from nrtsync.domain.models.callout import Callout, QueuedChange
from nrtsync.domain.zuora_dates import ZuoraDateError, parse_zuora_date, parse_zuora_datetime
from tests.support.events import callout_secret, load_event, with_fields
from tests.support.lambda_context import FakeLambdaContext

PST = timezone(timedelta(hours=-8))

# Zuora's locale formats (docs.zuora.com, "Locale date formats") for 5 March 2024, with and without a time.
READABLE = [
    ("2024-03-05T10:22:39.000-08:00", datetime(2024, 3, 5, 10, 22, 39, tzinfo=PST)),  # ISO 8601, Zuora's API
    ("2024-03-05T10:22:39.000-0800", datetime(2024, 3, 5, 10, 22, 39, tzinfo=PST)),  # Java's Z pattern
    ("2024-03-05 10:22:39", datetime(2024, 3, 5, 10, 22, 39)),
    ("2024/03/05 10:22:39", datetime(2024, 3, 5, 10, 22, 39)),  # 日本語 (日本): YYYY/MM/DD
    ("05.03.2024 10:22", datetime(2024, 3, 5, 10, 22)),  # Deutsch (Deutschland): DD.MM.YYYY
    ("05-03-2024 10:22:39 -08:00", datetime(2024, 3, 5, 10, 22, 39, tzinfo=PST)),  # Dansk, português: DD-MM-YYYY
    ("5.3.2024 02:54 PM", datetime(2024, 3, 5, 14, 54)),  # a datetime custom field's 12-hour clock
    ("05.03.2024 12:00 AM", datetime(2024, 3, 5, 0, 0)),
    ("2024/03/05T10:22:39.5Z", datetime(2024, 3, 5, 10, 22, 39, 500_000, tzinfo=UTC)),
]
AMBIGUOUS = ["03/05/2024 10:22", "03/05/2024", "13/05/2024 10:22", "05/13/2024 10:22:39 PM"]


@pytest.mark.parametrize(("rendered", "expected"), READABLE)
def test_the_unambiguous_layouts_are_read(rendered: str, expected: datetime) -> None:
    assert parse_zuora_datetime(rendered) == expected
    assert parse_zuora_date(rendered) == date(2024, 3, 5)


@pytest.mark.parametrize("rendered", ["2024-03-05", "2024/03/05", "05.03.2024", "5-3-2024"])
def test_a_date_is_read_in_every_unambiguous_layout(rendered: str) -> None:
    assert parse_zuora_date(rendered) == date(2024, 3, 5)


@pytest.mark.parametrize("rendered", AMBIGUOUS)
def test_month_and_day_in_a_slash_layout_are_refused_not_guessed(rendered: str) -> None:
    # 13/05/2024 could only be day-first, but accepting it would make the same template work from the 13th of
    # the month and fail on the 1st to the 12th: refuse the layout, not the day.
    with pytest.raises(ZuoraDateError, match="ambiguous") as caught:
        parse_zuora_date(rendered)
    assert "ISO 8601" in str(caught.value)


@pytest.mark.parametrize(
    ("rendered", "reason"),
    [
        ("2024-03-05", "time of day"),
        ("05.03.2024", "time of day"),
        ("1709662959", "not a number"),
        ("", "empty"),
        ("5 Mar 2024 10:22", "format Zuora renders"),
        ("2024-02-30T10:00:00Z", "not a valid"),
        ("30.02.2024 10:00", "not a valid"),
        ("05.03.2024 13:00 PM", "1-12"),
        ("05.03.2024 10:00 +05:99", "not a valid"),
        ("2024-03-05T10:22:39 PST", "not a valid"),
        ("2024-03-05Q10:22:39", "not a valid"),
        ("05.03.2024 10:22 tomorrow", "format Zuora renders"),
    ],
)
def test_what_cannot_be_read_says_why_and_what_is_expected(rendered: str, reason: str) -> None:
    with pytest.raises(ZuoraDateError) as caught:
        parse_zuora_datetime(rendered)
    assert reason in str(caught.value)
    assert "ISO 8601" in str(caught.value)


@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)).map(lambda d: d.replace(microsecond=0))
)
def test_every_layout_of_one_moment_reads_back_the_same(moment: datetime) -> None:
    renderings = [
        moment.strftime("%Y-%m-%dT%H:%M:%S"),
        moment.strftime("%Y/%m/%d %H:%M:%S"),
        moment.strftime("%d.%m.%Y %H:%M:%S"),
        moment.strftime("%d-%m-%Y %I:%M:%S %p"),
    ]
    assert {parse_zuora_datetime(text) for text in renderings} == {moment}


# --- updatedDate: the callout model and the endpoint --------------------------------------------------------


def _callout(updated: str) -> dict[str, Any]:
    return {"objectType": "Account", "id": "A1", "updatedDate": updated, "fields": {}}


@pytest.mark.parametrize(("rendered", "expected"), READABLE)
def test_updated_date_in_any_unambiguous_layout_is_accepted_in_utc(rendered: str, expected: datetime) -> None:
    callout = Callout.model_validate(_callout(rendered))
    naive_as_utc = expected if expected.tzinfo else expected.replace(tzinfo=UTC)
    assert callout.updatedDate == naive_as_utc
    assert callout.updatedDate.utcoffset() == timedelta(0)


@pytest.mark.parametrize("rendered", AMBIGUOUS)
def test_updated_date_in_a_slash_layout_is_refused_naming_iso(rendered: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Callout.model_validate(_callout(rendered))
    [error] = caught.value.errors()
    assert error["loc"] == ("updatedDate",)
    assert "ambiguous" in error["msg"]
    assert "ISO 8601" in error["msg"]


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-1")
        queue_url = sqs.create_queue(QueueName="nrtsync-callouts")["QueueUrl"]
        boto3.client("secretsmanager", region_name="eu-west-1").create_secret(
            Name="nrtsync/callout", SecretString=json.dumps(callout_secret())
        )
        monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        monkeypatch.setenv("CALLOUT_QUEUE_URL", queue_url)
        monkeypatch.setenv("CALLOUT_SECRET_ID", "nrtsync/callout")
        ingest_settings.cache_clear()
        ingest_app.endpoint.use(None)
        yield sqs, queue_url
        ingest_app.endpoint.use(None)
        ingest_settings.cache_clear()


def test_the_endpoint_answers_422_naming_the_format_for_an_ambiguous_updated_date(queue: tuple[Any, str]) -> None:
    sqs, queue_url = queue
    event = with_fields(load_event("callout_account"), updatedDate="03/05/2024 10:22")

    response = ingest_app.lambda_handler(event, FakeLambdaContext())

    assert response["statusCode"] == 422, response["body"]
    [problem] = json.loads(response["body"])["errors"]
    assert problem["field"] == "updatedDate"
    assert "ISO 8601" in problem["message"]
    assert "Messages" not in sqs.receive_message(QueueUrl=queue_url)


def test_the_endpoint_queues_a_german_layout_updated_date_as_the_tenants_local_time(queue: tuple[Any, str]) -> None:
    sqs, queue_url = queue
    event = with_fields(load_event("callout_account"), updatedDate="05.03.2024 10:22:39")

    response = ingest_app.lambda_handler(event, FakeLambdaContext())

    assert response["statusCode"] == 200, response["body"]
    [message] = sqs.receive_message(QueueUrl=queue_url)["Messages"]
    # No offset: local time in the tenant's zone (ZuoraTenantTimeZone, default America/Los_Angeles: PST, UTC-8)
    assert QueuedChange.model_validate_json(message["Body"]).updated_date == datetime(
        2024, 3, 5, 18, 22, 39, tzinfo=UTC
    )


# --- date and datetime fields of the mapping ----------------------------------------------------------------


@pytest.mark.parametrize("rendered", ["2024-03-05", "2024/03/05", "05.03.2024", "05-03-2024", "05.03.2024 23:59"])
def test_a_date_field_takes_every_unambiguous_layout(rendered: str) -> None:
    assert coerce_value(rendered, "date", field="TermStartDate") == "2024-03-05"


@pytest.mark.parametrize(
    ("rendered", "expected"),
    [
        ("05.03.2024 14:54:00", "2024-03-05T14:54:00+00:00"),  # no offset: the zone given (UTC by default)
        ("05-03-2024 02:54 PM -08:00", "2024-03-05T14:54:00-08:00"),
        ("2024/03/05 14:54Z", "2024-03-05T14:54:00+00:00"),
    ],
)
def test_a_datetime_field_takes_every_unambiguous_layout(rendered: str, expected: str) -> None:
    assert coerce_value(rendered, "datetime", field="UpdatedDate") == expected


@pytest.mark.parametrize("kind", ["date", "datetime"])
def test_an_ambiguous_date_field_is_a_mapping_error_naming_the_field_and_the_format(kind: Any) -> None:
    with pytest.raises(MappingError, match="field 'TermStartDate'") as caught:
        coerce_value("03/05/2024", kind, field="TermStartDate")
    assert "ISO 8601" in str(caught.value)


def test_every_date_field_of_the_default_mapping_goes_through_the_same_reader() -> None:
    # The docs promise the same formats for every date field, not only updatedDate.
    mapping = load_mapping()
    typed = [
        (name, spec.type)
        for obj in mapping.objects.values()
        for name, spec in obj.fields.items()
        if spec.type in ("date", "datetime")
    ]
    assert typed
    for name, kind in typed:
        assert coerce_value("05.03.2024", kind, field=name).startswith("2024-03-05")
