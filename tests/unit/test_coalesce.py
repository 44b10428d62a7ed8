"""Coalescing: property tests against the rule "the newest version of each record wins"."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from nrtsync.domain.coalesce import IncomingChange, coalesce
from tests.support.sync_world import T0, change

change_specs = st.lists(
    st.tuples(
        st.sampled_from(["Account", "Invoice"]),
        st.sampled_from(["R1", "R2", "R3"]),
        st.integers(min_value=0, max_value=5),  # updatedDate, seconds: collisions on purpose
        st.integers(min_value=0, max_value=5),  # receive time, seconds after
        st.sampled_from(["x", "y"]),
    ),
    max_size=40,
)


def build(specs) -> list[IncomingChange]:
    return [
        IncomingChange(
            message_id=f"m{n:03d}",
            receipt_handle=f"r{n}",
            receive_count=1,
            change=change(
                obj, rid, updated=T0 + timedelta(seconds=u), received=T0 + timedelta(seconds=u + r), Name=name
            ),
        )
        for n, (obj, rid, u, r, name) in enumerate(specs)
    ]


@given(change_specs)
def test_every_change_is_accounted_for_exactly_once(specs) -> None:
    incoming = build(specs)
    batch = coalesce(incoming)
    seen = [w.message_id for w in batch.winners] + [loser.message_id for loser, _ in batch.superseded]
    assert sorted(seen) == sorted(i.message_id for i in incoming)


@given(change_specs)
def test_the_winner_of_each_record_is_its_newest_version(specs) -> None:
    incoming = build(specs)
    batch = coalesce(incoming)
    winners = {w.change.record_key: w for w in batch.winners}
    assert len(winners) == len(batch.winners), "one winner per record"
    for item in incoming:
        winner = winners[item.change.record_key]
        assert (winner.change.version, winner.message_id) >= (item.change.version, item.message_id)
    for loser, winner in batch.superseded:
        assert loser.change.record_key == winner.change.record_key
        assert winner is winners[loser.change.record_key]


@given(change_specs)
def test_the_result_does_not_depend_on_arrival_order(specs) -> None:
    incoming = build(specs)
    forward = {w.message_id for w in coalesce(incoming).winners}
    backward = {w.message_id for w in coalesce(list(reversed(incoming))).winners}
    assert forward == backward


def test_updated_date_decides_before_receive_time() -> None:
    # Given a newer change that arrived first and an older one that arrived later
    newer = IncomingChange(
        "m1", "r1", 1, change(updated=T0 + timedelta(seconds=10), received=T0 + timedelta(seconds=11))
    )
    older = IncomingChange("m2", "r2", 1, change(updated=T0, received=T0 + timedelta(seconds=60)))

    # When coalesced
    batch = coalesce([newer, older])

    # Then the newer by Zuora's clock wins
    assert [w.message_id for w in batch.winners] == ["m1"]
