"""One API usage type and one rule for an allocation of 0, from Salesforce's answer to the published metric.

Issue 10: three types disagreed (the adapter's said 100 %, the state table's and the metrics function's 0 %), so
an org reporting an allocation of 0 passed the budget guard and was published as 0 %. An allocation of 0
means nothing is left: 100 %, the safe reading.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nrtsync.adapters.aws.api_usage import DynamoApiUsageStore
from nrtsync.domain.outcomes import Outcome
from nrtsync.ports.salesforce import ApiUsage
from nrtsync.ports.state import StateUnavailableError
from tests.support.sync_world import STATE_TABLE, SyncWorld, change, message


def test_an_allocation_of_zero_is_used_up() -> None:
    # Given an org that reports an allocation of 0 / When / Then it is 100 % used, never 0 %
    assert ApiUsage(used=0, limit=0, observed_at=datetime.now(UTC)).percent == 100.0
    assert ApiUsage(used=50, limit=0, observed_at=datetime.now(UTC)).percent == 100.0


def test_a_negative_reading_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        ApiUsage(used=-1, limit=10, observed_at=datetime.now(UTC))


def test_an_allocation_of_zero_saved_by_sync_is_published_as_100_percent(world: SyncWorld) -> None:
    # Given the sync function saved a reading of an allocation of 0 in the state table
    world.state.save_api_usage(ApiUsage(used=0, limit=0, observed_at=datetime.now(UTC)))

    # When the metrics function reads it
    usage = DynamoApiUsageStore(STATE_TABLE, client=world.dynamodb).api_usage()

    # Then it reads the same value with the same rule: 100 %
    assert usage is not None
    assert usage.percent == 100.0


def test_an_allocation_of_zero_in_the_state_table_stops_the_budget_guard(world: SyncWorld) -> None:
    # Given another invocation saw an allocation of 0 (this one has not called Salesforce yet)
    world.state.save_api_usage(ApiUsage(used=0, limit=0, observed_at=datetime.now(UTC)))

    # When a change arrives
    result = world.run(message(change(Name="x")))

    # Then the guard holds it back: no call to Salesforce, the change waits on the queue
    assert world.salesforce.calls == []
    assert [(o.outcome, o.error_code) for o in result.outcomes] == [(Outcome.WAITING, "API_BUDGET_REACHED")]
    assert result.retry_message_ids


def test_a_malformed_usage_item_reads_as_no_reading_for_every_function(world: SyncWorld) -> None:
    # Given an API usage item without its limit (written by hand, or by an older version)
    world.dynamodb.put_item(
        TableName=STATE_TABLE,
        Item={"pk": {"S": "ORG#API_USAGE"}, "used": {"N": "10"}, "observed_at": {"S": datetime.now(UTC).isoformat()}},
    )

    # When the metrics function, the backfill and the sync's budget guard read it
    # Then each reads no reading at all, through the same adapter
    assert DynamoApiUsageStore(STATE_TABLE, client=world.dynamodb).api_usage() is None
    assert world.state.api_usage() is None


def test_a_table_that_cannot_be_read_is_a_state_error(world: SyncWorld) -> None:
    # Given a table that does not exist / When its usage is read / Then the caller is told to retry later
    with pytest.raises(StateUnavailableError, match="API usage"):
        DynamoApiUsageStore("no-such-table", client=world.dynamodb).api_usage()
