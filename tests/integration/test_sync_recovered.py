"""Changes reconciliation read from Zuora are marked as such through the sync: the record's trail says where each
change came from, and the session log line counts the ones it recovered into Salesforce."""

from __future__ import annotations

from datetime import timedelta

from nrtsync.domain.mapping import load_mapping
from nrtsync.domain.zoql import change_from_record
from nrtsync_fakes.zuora import zuora_account
from tests.support.sync_world import T0, SyncWorld, change, message


def test_the_trail_and_the_session_line_show_which_changes_reconciliation_recovered(world: SyncWorld) -> None:
    # Given one change from a callout and two that reconciliation read from Zuora's API
    callout = change("Account", "A1")
    recovered = [
        change_from_record(
            load_mapping(),
            "Account",
            zuora_account(record_id, T0),
            received_at=T0 + timedelta(minutes=20),
            source="reconcile",
        )
        for record_id in ("A2", "A3")
    ]

    # When the sync writes them in one session
    result = world.run(message(callout), *(message(c) for c in recovered))

    # Then the session log line (and the Sync History item) counts the two recovered into Salesforce
    assert result.session.as_log()["written"] == 3
    assert result.session.as_log()["recovered"] == 2
    [session_item] = world.history("SESSION#")
    assert session_item["recovered"] == 2
    # and each record's trail says where its change came from
    sources = {item["record_id"]: item["source"] for item in world.history("RECORD#")}
    assert sources == {"A1": "callout", "A2": "reconcile", "A3": "reconcile"}


def test_a_recovered_change_queued_twice_counts_once(world: SyncWorld) -> None:
    # Given a change reconciliation queued twice (a page queued again after a stop before its checkpoint)
    again = change_from_record(
        load_mapping(), "Account", zuora_account("A1", T0), received_at=T0 + timedelta(minutes=20), source="reconcile"
    )
    first = world.run(message(again))

    # When the sync sees the copy
    second = world.run(message(again))

    # Then the copy is a duplicate, not a second recovery
    assert first.session.as_log()["recovered"] == 1
    assert second.session.as_log()["duplicates"] == 1
    assert second.session.as_log()["recovered"] == 0
