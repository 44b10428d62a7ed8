"""``nrtsync forget``: an operator clears one record's version state (a wrong future date that got in anyway), after
confirming, on the real state table (moto); a record being written right now is refused."""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from typing import Any

import pytest

from nrtsync.adapters.aws.state import DynamoVersionStore
from nrtsync.ports.state import ClaimStatus
from nrtsync_cli.cli import run
from nrtsync_cli.operations import Operations, StackResources
from tests.support.sync_world import HISTORY_TABLE, STATE_TABLE
from tests.support.terminal import Tty

KEY = "Account#A1"
FUTURE = "99999999999999999.00000000000000001"  # a version from 9999-12-31 (the date was accepted before the skew)


@dataclass
class World:
    store: DynamoVersionStore
    ops: Operations

    def forget(self, *argv: str, answer: str | None = None) -> tuple[int, str]:
        out = io.StringIO()
        stdin = Tty(answer) if answer is not None else io.StringIO()
        code = run(["forget", *argv], operations=self.ops, out=out, stdin=stdin)
        return code, out.getvalue()


@pytest.fixture
def cli(dynamodb: Any) -> World:
    resources = StackResources(HISTORY_TABLE, "unused-queue", "unused-dlq", state_table=STATE_TABLE)
    return World(DynamoVersionStore(STATE_TABLE, client=dynamodb), Operations(resources, dynamodb=dynamodb))


def written_in_the_future(store: DynamoVersionStore) -> None:
    assert store.claim(KEY, FUTURE, "h-future", owner="sync-1", lease_until_ms=int(time.time() * 1000) + 60_000)
    assert store.commit(KEY, FUTURE, "h-future", owner="sync-1", salesforce_id="001A")


def test_after_confirmation_the_record_is_forgotten_and_its_next_change_is_written(cli: World) -> None:
    # Given a record whose written version came from a date in the future: every real change is stale
    written_in_the_future(cli.store)
    lease = int(time.time() * 1000) + 60_000
    assert cli.store.claim(KEY, "00000000000000001.1", "h-real", owner="s", lease_until_ms=lease).status is (
        ClaimStatus.STALE
    )

    # When the operator forgets it and says yes
    code, out = cli.forget("Account", "A1", answer="y\n")

    # Then the state is gone and the next real change claims
    assert code == 0
    assert "forgot the sync state of Account A1" in out
    assert cli.store.written_version(KEY) is None
    assert cli.store.claim(KEY, "00000000000000001.1", "h-real", owner="s", lease_until_ms=lease).status is (
        ClaimStatus.CLAIMED
    )


def test_saying_no_or_having_no_terminal_forgets_nothing(cli: World) -> None:
    written_in_the_future(cli.store)

    declined, _ = cli.forget("Account", "A1", answer="n\n")
    no_terminal, _ = cli.forget("Account", "A1")

    assert (declined, no_terminal) == (1, 2)
    assert cli.store.written_version(KEY) == FUTURE


def test_yes_skips_the_question_and_json_shows_what_was_there(cli: World) -> None:
    written_in_the_future(cli.store)

    code, out = cli.forget("Account", "A1", "--yes", "--json")

    answer = json.loads(out)
    assert code == 0
    assert answer["forgotten"] is True
    assert answer["was"]["written_version"] == FUTURE


def test_a_record_being_written_is_refused_and_a_record_without_state_says_so(cli: World) -> None:
    lease = int(time.time() * 1000) + 60_000
    assert cli.store.claim(KEY, "00000000000000002.1", "h", owner="sync-2", lease_until_ms=lease).status is (
        ClaimStatus.CLAIMED
    )

    leased, _ = cli.forget("Account", "A1", "--yes")
    missing, out = cli.forget("Account", "NEVER", "--yes")

    assert leased == 1
    assert cli.store.claim(KEY, "00000000000000003.1", "h3", owner="x", lease_until_ms=lease).status is (
        ClaimStatus.BUSY
    )
    assert (missing, "nothing to forget" in out) == (1, True)
