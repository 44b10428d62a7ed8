"""A backfill run (``services.backfill``): parents before children, resuming, pacing, a fixed window, failures."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from nrtsync.domain.models.callout import QueuedChange
from nrtsync.domain.models.zuora import ZuoraAuthError, ZuoraRetryableError
from nrtsync.ports.backfill import BackfillStatus
from nrtsync.ports.salesforce import ApiUsage
from nrtsync.ports.secrets import SecretInvalidError
from nrtsync.ports.sweep import SweepCursor
from nrtsync.ports.zuora import QueryPage
from nrtsync.services.backfill.admin import ZUORA_EPOCH, BackfillNotFoundError, BackfillRequestError, summary
from nrtsync_fakes.zuora import zuora_account
from tests.support.backfill_world import NOW, BackfillWorld

FAR = 1e12
UPDATED = NOW - timedelta(days=30)


def _seed(world: BackfillWorld, accounts: int, children_each: int = 1) -> None:
    for n in range(accounts):
        account = f"A{n:05d}"
        world.zuora.put("Account", zuora_account(account, UPDATED))
        for child in ("Subscription", "Invoice", "Payment"):
            world.zuora.put(
                child,
                *(
                    {"Id": f"{child[0]}{n:05d}-{k}", "UpdatedDate": UPDATED.isoformat(), "AccountId": account}
                    # A subscription version names its subscription (one record per number in Salesforce).
                    | ({"Name": f"S{n:05d}-{k}", "Version": 1} if child == "Subscription" else {})
                    for k in range(children_each)
                ),
            )


def test_every_mapped_object_runs_in_write_order_and_every_parent_is_queued_before_any_child() -> None:
    # Given a tenant of accounts, each with a subscription, an invoice and a payment
    world = BackfillWorld(page_size=50)
    _seed(world, 120)
    run = world.admin.create()

    # When the run is stepped without a deadline
    result = world.service.run(run.run_id, deadline=FAR)

    # Then it is done; objects ran in the mapping's write order; all parents were queued before any child
    assert result.status is BackfillStatus.DONE
    assert list(run.objects) == world.mapping.write_order()
    sent = [c.object_type for c in world.sink.sent]
    last_account = max(i for i, o in enumerate(sent) if o == "Account")
    first_child = min(i for i, o in enumerate(sent) if o != "Account")
    assert last_account < first_child
    keys = [c.record_key for c in world.sink.sent]
    assert len(keys) == len(set(keys)) == 480
    assert all(c.notification_id.startswith("backfill:") for c in world.sink.sent)
    done = world.store.items[run.run_id]
    counts = {p.object_type: (p.read, p.queued, p.finished) for p in done.progress}
    assert counts == dict.fromkeys(run.objects, (120, 120, True))


def test_a_named_object_runs_alone_and_the_default_window_starts_at_zuoras_epoch() -> None:
    world = BackfillWorld()
    _seed(world, 3)
    run = world.admin.create(["Invoice"])
    assert run.objects == ("Invoice",)
    assert run.since == ZUORA_EPOCH
    assert world.service.run(run.run_id, deadline=FAR).status is BackfillStatus.DONE
    assert {c.object_type for c in world.sink.sent} == {"Invoice"}


def test_a_step_that_reaches_its_deadline_says_running_and_the_next_step_resumes_where_it_stopped() -> None:
    # Given 1,000 accounts in pages of 100, each page taking 10 s
    world = BackfillWorld(page_size=100)
    _seed(world, 1000, children_each=0)
    world.seconds_per_page = 10.0
    run = world.admin.create(["Account"])

    # When a step has 60 s of reserve plus 35 s for pages
    first = world.service.run(run.run_id, deadline=world.monotonic_now + 95)

    # Then it stopped part-way, running, with its progress stored
    assert first.status is BackfillStatus.RUNNING
    assert first.as_dict()["status"] == "running"
    partial = world.store.items[run.run_id].object_progress("Account")
    assert 0 < partial.read < 1000
    assert len(world.sink.sent) == partial.queued

    # And the next steps finish it, reading on from the saved cursor: every record queued exactly once
    steps = 0
    while (result := world.service.run(run.run_id, deadline=world.monotonic_now + 95)).status is not (
        BackfillStatus.DONE
    ):
        assert result.status is BackfillStatus.RUNNING
        steps += 1
        assert steps < 20
    keys = [c.record_key for c in world.sink.sent]
    assert len(keys) == len(set(keys)) == 1000
    assert world.zuora.queries == [world.zuora.queries[0]]  # one query, the rest queryMore by the saved locator


def test_a_full_callout_queue_makes_the_run_wait_and_it_resumes_when_the_queue_drains() -> None:
    world = BackfillWorld(page_size=100)
    _seed(world, 500, children_each=0)
    run = world.admin.create(["Account"])

    # Given a backlog above the bound, nothing is read and the run waits
    world.pacer.queue_backlog = 2_001
    waiting = world.service.run(run.run_id, deadline=FAR)
    assert waiting.status is BackfillStatus.WAITING
    assert waiting.wait_seconds == 45
    assert "backlog 2001 > 2000" in waiting.run.reason
    assert world.sink.sent == []
    assert world.zuora.queries == []

    # When the backlog rises between pages (the backfill's own pages fill the queue), it waits part-way
    sent_pages = 0

    def fill_queue_after_two_pages(changes: Sequence[QueuedChange]) -> None:
        nonlocal sent_pages
        world.sink.sent.extend(changes)
        sent_pages += 1
        world.pacer.queue_backlog = 0 if sent_pages < 2 else 5_000

    world.pacer.queue_backlog = 0
    world.sink.send_batch = fill_queue_after_two_pages  # type: ignore[method-assign]
    paused = world.service.run(run.run_id, deadline=FAR)
    assert paused.status is BackfillStatus.WAITING
    assert len(world.sink.sent) == 200

    # Then once the queue drains the run goes on from its cursor to the end
    world.pacer.queue_backlog = 0
    sent_pages = -100
    assert world.service.run(run.run_id, deadline=FAR).status is BackfillStatus.DONE
    assert len({c.record_key for c in world.sink.sent}) == len(world.sink.sent) == 500


def test_api_usage_above_the_backfill_bound_makes_it_wait_but_a_stale_reading_does_not() -> None:
    world = BackfillWorld()
    _seed(world, 10, children_each=0)
    run = world.admin.create(["Account"])

    world.pacer.usage = ApiUsage(used=81_000, limit=100_000, observed_at=NOW - timedelta(minutes=5))
    waiting = world.service.run(run.run_id, deadline=FAR)
    assert waiting.status is BackfillStatus.WAITING
    assert "API usage 81.0 % >= 80 %" in waiting.run.reason
    assert world.sink.sent == []

    # A reading older than the bound's age: no sync has run since, so it is no reason to wait
    world.pacer.usage = ApiUsage(used=81_000, limit=100_000, observed_at=NOW - timedelta(hours=2))
    assert world.service.run(run.run_id, deadline=FAR).status is BackfillStatus.DONE
    assert len(world.sink.sent) == 10


def test_usage_under_the_bound_lets_the_run_go_on() -> None:
    world = BackfillWorld()
    _seed(world, 4, children_each=0)
    world.pacer.usage = ApiUsage(used=79_900, limit=100_000, observed_at=NOW)
    run = world.admin.create(["Account"])
    assert world.service.run(run.run_id, deadline=FAR).status is BackfillStatus.DONE


def test_an_open_circuit_breaker_makes_the_run_wait() -> None:
    world = BackfillWorld()
    _seed(world, 4, children_each=0)
    run = world.admin.create(["Account"])
    world.pacer.breaker_open = True
    waiting = world.service.run(run.run_id, deadline=FAR)
    assert waiting.status is BackfillStatus.WAITING
    assert "circuit breaker is open" in waiting.run.reason
    world.pacer.breaker_open = False
    assert world.service.run(run.run_id, deadline=FAR).status is BackfillStatus.DONE


def test_until_is_fixed_when_the_run_is_created_so_a_later_step_reads_the_same_window() -> None:
    # Given a run created now, stepped a day later, after a record changed after its creation
    world = BackfillWorld()
    world.zuora.put("Account", zuora_account("OLD", NOW - timedelta(hours=1)))
    run = world.admin.create(["Account"])
    world.now = NOW + timedelta(days=1)
    world.zuora.put("Account", zuora_account("NEW", NOW + timedelta(hours=1)))

    # When it is stepped
    world.service.run(run.run_id, deadline=FAR)

    # Then it read its own window, which ends when it was created
    assert run.until == NOW
    assert [c.record_id for c in world.sink.sent] == ["OLD"]
    assert world.store.items[run.run_id].until == NOW


def test_a_zuora_credential_refused_fails_the_run_with_the_reason_and_it_stays_failed() -> None:
    world = BackfillWorld()
    _seed(world, 2, children_each=0)
    calls = 0

    def refused(zoql: str) -> QueryPage:
        nonlocal calls
        calls += 1
        raise ZuoraAuthError("the token endpoint answered 401 invalid_client")

    world.zuora.query = refused  # type: ignore[method-assign]
    run = world.admin.create(["Account"])

    failed = world.service.run(run.run_id, deadline=FAR)

    assert failed.status is BackfillStatus.FAILED
    assert failed.as_dict()["reason"] == "ZuoraAuthError: the token endpoint answered 401 invalid_client"
    assert world.store.items[run.run_id].status is BackfillStatus.FAILED
    assert world.service.run(run.run_id, deadline=FAR).status is BackfillStatus.FAILED
    assert calls == 1


def test_a_zuora_secret_not_filled_in_fails_the_run_naming_it() -> None:
    world = BackfillWorld()
    run = world.admin.create(["Account"])

    def no_secret(name: str) -> object:
        raise SecretInvalidError("the Zuora secret nrtsync-zuora is not valid: check base_url, client_id")

    world.service._sweeps = no_secret  # type: ignore[assignment]
    failed = world.service.run(run.run_id, deadline=FAR)
    assert failed.status is BackfillStatus.FAILED
    assert "check base_url, client_id" in failed.run.reason


def test_zuora_unavailable_makes_the_run_wait_and_retry_from_its_cursor() -> None:
    world = BackfillWorld(page_size=5)
    _seed(world, 20, children_each=0)
    run = world.admin.create(["Account"])
    real = world.zuora.query_more
    outage = {"on": True}

    def flaky(locator: str) -> QueryPage:
        if outage["on"]:
            raise ZuoraRetryableError("Zuora answered 503")
        return real(locator)

    world.zuora.query_more = flaky  # type: ignore[method-assign, assignment]
    waiting = world.service.run(run.run_id, deadline=FAR)
    assert waiting.status is BackfillStatus.WAITING
    assert "ZuoraRetryableError" in waiting.run.reason
    assert len(world.sink.sent) == 5
    # The failure keeps what the step stored before it: the object's start
    assert world.store.items[run.run_id].object_progress("Account").started_at == NOW
    outage["on"] = False
    assert world.service.run(run.run_id, deadline=FAR).status is BackfillStatus.DONE
    assert len({c.record_key for c in world.sink.sent}) == len(world.sink.sent) == 20


def test_an_object_whose_window_was_read_to_its_end_is_not_read_again_after_a_lost_save() -> None:
    # Given the sweep finished Account (its watermark is the run's until) but the run item never said so
    world = BackfillWorld()
    _seed(world, 3, children_each=0)
    run = world.admin.create(["Account"])
    world.checkpoints.finish(run.sweep_name, SweepCursor("Account", run.since, run.until))

    assert world.service.run(run.run_id, deadline=FAR).status is BackfillStatus.DONE
    assert world.zuora.queries == []


def test_the_view_shows_an_unfinished_objects_counts_from_its_cursor() -> None:
    world = BackfillWorld(page_size=10)
    _seed(world, 50, children_each=0)
    world.seconds_per_page = 10.0
    run = world.admin.create(["Account"])
    world.service.run(run.run_id, deadline=world.monotonic_now + 85)
    stored = world.store.items[run.run_id].object_progress("Account")
    # The cursor moved on after the step saved: the view reads it
    world.checkpoints.save(run.sweep_name, SweepCursor("Account", run.since, run.until, "loc", pages=4, read=40))
    assert world.admin.view(run.run_id).object_progress("Account").read == 40 > stored.read
    row = summary(world.admin.view(run.run_id), now=world.now)[0]
    assert (row["object"], row["read"], row["state"]) == ("Account", 40, "running")


@pytest.mark.parametrize(
    ("objects", "since", "until", "named"),
    [
        (["Account", "Quote"], None, None, "--object Quote"),
        ([], datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC), "--since"),
        ([], datetime(2026, 1, 1), None, "--since"),  # no offset: the point of the case
        ([], None, NOW + timedelta(hours=1), "--until"),
    ],
)
def test_a_bad_run_is_refused_naming_the_option_and_nothing_is_stored(
    objects: list[str], since: datetime | None, until: datetime | None, named: str
) -> None:
    world = BackfillWorld()
    with pytest.raises(BackfillRequestError, match=named):
        world.admin.create(objects, since, until)
    assert world.store.items == {}


def test_an_unknown_run_id_is_not_found() -> None:
    with pytest.raises(BackfillNotFoundError, match="no backfill run nope"):
        BackfillWorld().service.run("nope", deadline=FAR)
