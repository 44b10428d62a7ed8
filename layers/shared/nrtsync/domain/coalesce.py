"""Coalescing a batch: many changes to one record become one write of the newest."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from nrtsync.domain.models.callout import QueuedChange


@dataclass(frozen=True)
class IncomingChange:
    """A change as it arrived in this invocation: the queue message plus what SQS says about it."""

    message_id: str
    receipt_handle: str
    receive_count: int
    change: QueuedChange


@dataclass(frozen=True)
class CoalescedBatch:
    winners: list[IncomingChange]
    """The newest change of each record, in the order the records first appeared."""
    superseded: list[tuple[IncomingChange, IncomingChange]]
    """(older change, the winner that replaces it): recorded, acknowledged, never written."""


def coalesce(changes: Iterable[IncomingChange]) -> CoalescedBatch:
    """Keep the newest change per record: Zuora's updatedDate first, then our receive time.

    A re-delivery of the winner (same content) is superseded by it too; the sync history tells the two
    apart by content hash.
    """
    newest: dict[str, IncomingChange] = {}
    losers: list[IncomingChange] = []
    for incoming in changes:
        key = incoming.change.record_key
        current = newest.get(key)
        if current is None:
            newest[key] = incoming
        elif (incoming.change.version, incoming.message_id) > (current.change.version, current.message_id):
            # The message id only breaks exact ties, so the choice is deterministic across retries.
            losers.append(current)
            newest[key] = incoming
        else:
            losers.append(incoming)
    return CoalescedBatch(
        winners=list(newest.values()),
        superseded=[(loser, newest[loser.change.record_key]) for loser in losers],
    )
