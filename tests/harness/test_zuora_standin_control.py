"""The Zuora stand-in's control routes a demo and a bench need (delete, update, bulk seeding) and its
queryLocator expiry, over HTTPS against ``python -m nrtsync_local.zuora``, read back with the product's client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from nrtsync.app.shared import build_zuora
from nrtsync.domain.mapping import load_mapping
from nrtsync.domain.models.zuora import ZuoraCredentials, ZuoraRequestError
from nrtsync.domain.zoql import changes_query
from nrtsync.domain.zuora_dates import parse_zuora_datetime
from nrtsync.ports.zuora import ZuoraPort
from nrtsync_local.standin.process import ZuoraStandinClient, trusting_session
from tests.support.zuora import query_changes, running_zuora_standin

pytestmark = pytest.mark.integration

MAPPING = load_mapping()
SINCE = datetime(2026, 11, 30, tzinfo=UTC)
UNTIL = SINCE + timedelta(days=30)


@pytest.fixture(scope="module")
def standin() -> Iterator[ZuoraStandinClient]:
    with running_zuora_standin() as client:
        yield client


@pytest.fixture(autouse=True)
def _clean(standin: ZuoraStandinClient) -> None:
    standin.reset()
    standin.configure(page_size=2000, locator_seconds=900)


@pytest.fixture
def zuora(standin: ZuoraStandinClient) -> Iterator[ZuoraPort]:
    session = trusting_session(standin.ca_file)
    credentials = ZuoraCredentials.model_validate(
        {"base_url": standin.url, "client_id": standin.client_id, "client_secret": standin.client_secret}
    )
    yield build_zuora(credentials, session=session)
    session.close()


def accounts(count: int) -> list[dict[str, object]]:
    start = SINCE + timedelta(minutes=1)
    return [
        {"Id": f"A{n:06d}", "UpdatedDate": (start + timedelta(seconds=n)).isoformat(), "Name": f"Account {n}"}
        for n in range(count)
    ]


def read_all(zuora: ZuoraPort, since: datetime = SINCE) -> dict[str, dict[str, object]]:
    """Every Account in the window, by id, as the product reads them (query, then queryMore until done)."""
    pages = query_changes(zuora, MAPPING, "Account", since, UNTIL)
    return {change.record_id: dict(change.fields) for page in pages for change in page}


def test_a_deleted_record_is_no_longer_returned_by_a_query(standin: ZuoraStandinClient, zuora: ZuoraPort) -> None:
    # Given three accounts
    standin.seed("Account", accounts(3))

    # When two are deleted (one id never existed)
    deleted = standin.delete("Account", ["A000000", "A000002", "NEVER"])

    # Then only the existing ones were deleted, and a query returns the one left
    assert sorted(deleted) == ["A000000", "A000002"]
    assert list(read_all(zuora)) == ["A000001"]


def test_an_update_sets_fields_and_moves_updated_date_to_now_or_to_the_given_time(
    standin: ZuoraStandinClient, zuora: ZuoraPort
) -> None:
    # Given two accounts updated on 2026-11-30
    standin.seed("Account", accounts(2))

    # When one is updated now, the other at a given time
    before = datetime.now(UTC) - timedelta(seconds=1)
    now_text = standin.update("Account", [{"Id": "A000000", "Name": "Renamed"}])
    given = standin.update("Account", [{"Id": "A000001", "Name": "Later"}], updated_date="2026-12-15T08:00:00.000Z")

    # Then the fields changed, and a query from after the seeds' dates returns both with their new UpdatedDate
    assert parse_zuora_datetime(now_text) >= before
    assert parse_zuora_datetime(given) == datetime(2026, 12, 15, 8, tzinfo=UTC)
    recent = read_all(zuora, since=SINCE + timedelta(days=1))
    assert {record_id: fields["Name"] for record_id, fields in recent.items()} == {
        "A000000": "Renamed",
        "A000001": "Later",
    }


def test_an_update_of_an_unknown_record_changes_nothing(standin: ZuoraStandinClient, zuora: ZuoraPort) -> None:
    standin.seed("Account", accounts(1))

    with pytest.raises(requests.HTTPError) as raised:
        standin.update("Account", [{"Id": "A000000", "Name": "Renamed"}, {"Id": "NEVER", "Name": "x"}])

    assert raised.value.response.status_code == 404
    assert "NEVER" in raised.value.response.text
    assert read_all(zuora)["A000000"]["Name"] == "Account 0"


def test_a_seed_with_a_bad_record_stores_none_of_them(standin: ZuoraStandinClient, zuora: ZuoraPort) -> None:
    with pytest.raises(requests.HTTPError) as raised:
        standin.seed("Account", [*accounts(2), {"Id": "NO-DATE"}])

    assert raised.value.response.status_code == 400
    assert "UpdatedDate" in raised.value.response.text
    assert read_all(zuora) == {}


def test_a_standard_object_with_no_records_answers_an_empty_page_and_an_unknown_one_is_refused(
    zuora: ZuoraPort,
) -> None:
    since = datetime(2026, 1, 1, tzinfo=UTC)
    assert zuora.query(changes_query(load_mapping(), "Invoice", since)).records == []  # Zuora has every object

    with pytest.raises(ZuoraRequestError) as refused:
        zuora.query("select Id, UpdatedDate from NoSuchObject where UpdatedDate >= '2026-01-01T00:00:00Z'")
    assert refused.value.code == "INVALID_TYPE"


def test_100000_records_are_seeded_in_one_call(standin: ZuoraStandinClient) -> None:
    records = accounts(100_000)

    # One control call takes them all (a bench seeds 100,000 at once; measured on this machine: 0.2 s).
    assert standin.seed("Account", records) == 100_000


def test_a_query_locator_is_refused_with_zuoras_fault_once_it_has_expired(
    standin: ZuoraStandinClient, zuora: ZuoraPort
) -> None:
    # Given locators that live 0.3 s, and a query of 3 pages
    assert standin.configure(locator_seconds=0.3)["locator_seconds"] == 0.3
    standin.configure(page_size=2)
    standin.seed("Account", accounts(5))
    zoql = changes_query(MAPPING, "Account", SINCE, UNTIL)
    first = zuora.query(zoql)
    assert first.query_locator is not None

    # When the next page is asked for in time, it comes; when the one after is asked for too late, it does not
    second = zuora.query_more(first.query_locator)
    assert second.query_locator is not None
    time.sleep(0.5)  # real time: the stand-in is its own process and ages its locators by its own clock
    with pytest.raises(ZuoraRequestError) as raised:
        zuora.query_more(second.query_locator)

    # Then Zuora's fault for an expired or invalid locator, permanent (a sweep must start its window again)
    assert raised.value.code == "INVALID_QUERY_LOCATOR"
    assert raised.value.http_status == 400


def test_an_unknown_or_reused_query_locator_gets_the_same_fault(standin: ZuoraStandinClient, zuora: ZuoraPort) -> None:
    standin.configure(page_size=2)
    standin.seed("Account", accounts(5))
    first = zuora.query(changes_query(MAPPING, "Account", SINCE, UNTIL))
    assert first.query_locator is not None
    zuora.query_more(first.query_locator)

    for locator in (first.query_locator, "0" * 32):
        with pytest.raises(ZuoraRequestError) as raised:
            zuora.query_more(locator)
        assert raised.value.code == "INVALID_QUERY_LOCATOR"


def test_locators_last_zuoras_15_minutes_by_default() -> None:
    from nrtsync_local.zuora.state import ZuoraState  # noqa: PLC0415 - the default, read where it is defined

    assert ZuoraState().locator_seconds == 15 * 60
