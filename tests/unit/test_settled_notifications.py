"""The bound on the notification ids a record's state keeps: the queue's retention, and a count, newest kept."""

from __future__ import annotations

from nrtsync.adapters.aws.state import (
    SETTLED_NOTIFICATION_RETENTION_MS,
    SETTLED_NOTIFICATIONS_MAX,
    settled_notifications_after,
)

NOW = 2_000_000_000_000


def test_ids_older_than_the_queues_retention_are_dropped_and_the_new_one_is_kept() -> None:
    settled = {"old": NOW - SETTLED_NOTIFICATION_RETENTION_MS - 1, "recent": NOW - SETTLED_NOTIFICATION_RETENTION_MS}

    assert settled_notifications_after(settled, "new", NOW) == {
        "recent": NOW - SETTLED_NOTIFICATION_RETENTION_MS,
        "new": NOW,
    }


def test_at_most_the_bound_are_kept_newest_first() -> None:
    settled = {f"n{i}": NOW - 1000 + i for i in range(SETTLED_NOTIFICATIONS_MAX)}

    after = settled_notifications_after(settled, "newest", NOW)

    assert len(after) == SETTLED_NOTIFICATIONS_MAX
    assert "newest" in after
    assert "n0" not in after  # the oldest made room
    assert f"n{SETTLED_NOTIFICATIONS_MAX - 1}" in after
