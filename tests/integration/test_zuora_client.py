"""The Zuora client over real HTTPS against the Zuora stand-in, started as ``python -m nrtsync_local.zuora``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from nrtsync.adapters.zuora import ZuoraClient
from nrtsync.app.shared import build_zuora
from nrtsync.domain.mapping import load_mapping
from nrtsync.domain.models.zuora import ZuoraAuthError, ZuoraCredentials, ZuoraRequestError, ZuoraRetryableError
from nrtsync.domain.zoql import changes_query
from nrtsync_fakes.clock import FakeClock
from nrtsync_local.standin.process import ZuoraStandinClient, trusting_session
from tests.support.zuora import query_changes, running_zuora_standin

pytestmark = pytest.mark.integration

MAPPING = load_mapping()
SINCE = datetime(2026, 11, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def standin() -> Iterator[ZuoraStandinClient]:
    with running_zuora_standin() as client:
        yield client


@pytest.fixture(autouse=True)
def _clean(standin: ZuoraStandinClient) -> None:
    standin.reset()
    standin.configure(page_size=2000, token_seconds=3599)


@pytest.fixture
def fake_time() -> FakeClock:
    # The client's clock and sleep: a sleep advances the clock and is recorded, so waits cost no real time.
    return FakeClock()


@pytest.fixture
def session(standin: ZuoraStandinClient) -> Iterator[requests.Session]:
    http = trusting_session(standin.ca_file)
    yield http
    http.close()


def credentials(standin: ZuoraStandinClient, secret: str | None = None) -> ZuoraCredentials:
    return ZuoraCredentials.model_validate(
        {"base_url": standin.url, "client_id": standin.client_id, "client_secret": secret or standin.client_secret}
    )


def client_for(
    standin: ZuoraStandinClient, session: requests.Session, fake_time: FakeClock, *, deadline: float = 60.0
) -> ZuoraClient:
    return ZuoraClient(
        credentials(standin),
        session=session,
        deadline_seconds=deadline,
        clock=fake_time.monotonic,
        sleep=fake_time.sleep,
        jitter=lambda: 0.5,
    )


def accounts(count: int, *, start: datetime = SINCE + timedelta(minutes=1)) -> list[dict[str, object]]:
    return [
        {"Id": f"A{n:05d}", "UpdatedDate": (start + timedelta(seconds=n)).isoformat(), "Name": f"Account {n}"}
        for n in range(count)
    ]


def test_5000_records_come_back_in_3_pages_of_at_most_2000_through_query_more(
    standin: ZuoraStandinClient, session: requests.Session, fake_time: FakeClock
) -> None:
    # Given 5,000 accounts in the window and one outside it
    older = {"Id": "OLD", "UpdatedDate": (SINCE - timedelta(seconds=1)).isoformat(), "Name": "Before the window"}
    standin.seed("Account", [*accounts(5000), older])
    zuora = build_zuora(credentials(standin), session=session)

    # When every page of the window is read
    pages = list(query_changes(zuora, MAPPING, "Account", SINCE, SINCE + timedelta(days=1)))

    # Then 3 pages (2,000 + 2,000 + 1,000) hold each record once, and the stand-in saw 1 query and 2 queryMore
    assert [len(page) for page in pages] == [2000, 2000, 1000]
    ids = [change.record_id for page in pages for change in page]
    assert sorted(ids) == [f"A{n:05d}" for n in range(5000)]
    assert standin.stats()["counts"] == {"token": 1, "query": 1, "queryMore": 2}
    assert pages[0][0].fields["Name"] is not None
    assert pages[0][0].fields["Status"] is None  # left out of the record by Zuora: null, as a callout sends it


def test_the_token_is_cached_then_renewed_before_it_expires(
    standin: ZuoraStandinClient, session: requests.Session, fake_time: FakeClock
) -> None:
    # Given tokens that live 10 minutes
    standin.configure(token_seconds=600)
    standin.seed("Account", accounts(3))
    zuora = client_for(standin, session, fake_time)
    zoql = changes_query(MAPPING, "Account", SINCE)

    # When it queries twice at once, then again 6 minutes later (inside the renewal margin of 5 minutes)
    zuora.query(zoql)
    zuora.query(zoql)
    cached = zuora.token_requests
    fake_time.advance(360)
    page = zuora.query(zoql)

    # Then the second query reused the token and the third asked for a new one
    assert cached == 1
    assert zuora.token_requests == 2
    assert len(page.records) == 3
    assert standin.stats()["counts"]["token"] == 2


def test_a_401_renews_the_token_once_and_the_query_succeeds(
    standin: ZuoraStandinClient, session: requests.Session, fake_time: FakeClock
) -> None:
    standin.seed("Account", accounts(2))
    zuora = client_for(standin, session, fake_time)
    zoql = changes_query(MAPPING, "Account", SINCE)
    zuora.query(zoql)

    # Given every issued token revoked (Zuora answers 401)
    standin.revoke_tokens()

    # When it queries again
    page = zuora.query(zoql)

    # Then it took one new token and got its answer
    assert len(page.records) == 2
    assert zuora.token_requests == 2


def test_a_refused_client_secret_is_an_auth_error(
    standin: ZuoraStandinClient, session: requests.Session, fake_time: FakeClock
) -> None:
    zuora = ZuoraClient(
        credentials(standin, "wrong"), session=session, clock=fake_time.monotonic, sleep=fake_time.sleep
    )

    with pytest.raises(ZuoraAuthError, match="invalid_client"):
        zuora.query(changes_query(MAPPING, "Account", SINCE))


def test_a_429_waits_what_retry_after_says_then_retries(
    standin: ZuoraStandinClient, session: requests.Session, fake_time: FakeClock
) -> None:
    standin.seed("Account", accounts(1))
    zuora = client_for(standin, session, fake_time)
    zuora.query(changes_query(MAPPING, "Account", SINCE))  # a token first, so the 429s hit the query

    # Given Zuora's rate limit answering the next two requests with 429 Retry-After 7 and 3
    standin.set_faults([{"status": 429, "retry_after": 7}, {"status": 429, "retry_after": 3}])

    # When it queries
    page = zuora.query(changes_query(MAPPING, "Account", SINCE))

    # Then it waited exactly what Zuora asked, then got the page
    assert fake_time.sleeps == [7.0, 3.0]
    assert len(page.records) == 1


def test_a_429_that_outlasts_the_deadline_is_a_retryable_error_without_waiting(
    standin: ZuoraStandinClient, session: requests.Session, fake_time: FakeClock
) -> None:
    zuora = client_for(standin, session, fake_time, deadline=10.0)
    standin.set_faults([{"status": 429, "retry_after": 30}])

    with pytest.raises(ZuoraRetryableError, match="429"):
        zuora.query(changes_query(MAPPING, "Account", SINCE))
    assert fake_time.sleeps == []


def test_a_5xx_is_retried_with_backoff(
    standin: ZuoraStandinClient, session: requests.Session, fake_time: FakeClock
) -> None:
    standin.seed("Account", accounts(1))
    zuora = client_for(standin, session, fake_time)
    zuora.query(changes_query(MAPPING, "Account", SINCE))
    standin.set_faults([{"status": 503}, {"status": 502}])

    page = zuora.query(changes_query(MAPPING, "Account", SINCE))

    assert len(page.records) == 1
    assert fake_time.sleeps == [0.25, 0.5]  # jitter 0.5 of 0.5 s, then of 1 s


def test_a_5xx_until_the_deadline_is_a_retryable_error(
    standin: ZuoraStandinClient, session: requests.Session, fake_time: FakeClock
) -> None:
    zuora = client_for(standin, session, fake_time, deadline=1.0)
    standin.set_faults([{"status": 503}] * 10)

    with pytest.raises(ZuoraRetryableError, match="HTTP 503"):
        zuora.query(changes_query(MAPPING, "Account", SINCE))


def test_a_query_the_stand_in_refuses_is_a_permanent_error_with_zuoras_code(
    standin: ZuoraStandinClient, session: requests.Session, fake_time: FakeClock
) -> None:
    zuora = client_for(standin, session, fake_time)

    with pytest.raises(ZuoraRequestError, match="MALFORMED_QUERY") as raised:
        zuora.query("select * from Account order by UpdatedDate")

    assert raised.value.code == "MALFORMED_QUERY"
    assert raised.value.http_status == 400
    assert fake_time.sleeps == []


def test_a_429_without_retry_after_waits_what_rate_limit_reset_says(
    standin: ZuoraStandinClient, session: requests.Session, fake_time: FakeClock
) -> None:
    standin.seed("Account", accounts(1))
    zuora = client_for(standin, session, fake_time)
    zuora.query(changes_query(MAPPING, "Account", SINCE))  # a token first, so the 429 hits the query

    # Given Zuora's rate limit answering with its RateLimit-* headers only (RateLimit-Reset 4: seconds to the reset)
    standin.set_faults([{"status": 429, "reset": 4}])

    # When it queries
    page = zuora.query(changes_query(MAPPING, "Account", SINCE))

    # Then it waited until the quota reset, not a guessed second
    assert fake_time.sleeps == [4.0]
    assert len(page.records) == 1


def test_a_field_the_object_lacks_is_refused_with_invalid_field(
    standin: ZuoraStandinClient, session: requests.Session, fake_time: FakeClock
) -> None:
    zuora = client_for(standin, session, fake_time)

    # ZOQL's Subscription has no SubscriptionNumber (its number is Name): Zuora refuses the whole query
    with pytest.raises(ZuoraRequestError, match="INVALID_FIELD") as raised:
        zuora.query("select Id, SubscriptionNumber from Subscription where UpdatedDate >= '2026-01-01T00:00:00+00:00'")

    assert "Subscription.SubscriptionNumber" in str(raised.value)
    # And every field the default mapping queries is one Zuora has
    for object_type in MAPPING.objects:
        zuora.query(changes_query(MAPPING, object_type, SINCE))
