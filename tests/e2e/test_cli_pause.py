"""``nrtsync --local pause`` / ``resume`` against a running local deployment: the poller stops receiving and the
changes wait on the queue; the probe leaves a MANUAL pause alone; ``resume`` lets them through."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nrtsync.adapters.aws.sqs import SqsChangeQueue
from nrtsync.domain.models.callout import QueuedChange
from nrtsync_cli.cli import run
from nrtsync_local.stack import LocalDeployment

pytestmark = pytest.mark.e2e
ACCOUNTS = "Zuora__CustomerAccount__c"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalDeployment]:
    deployment = LocalDeployment(
        stack_name=f"clipause{time.monotonic_ns()}",
        sync_batch_window_seconds=0.5,
        with_metrics=False,
        state_file=tmp_path / ".local" / "stack.json",
        probe_interval_seconds=0,
    )
    with deployment:
        yield deployment


def test_pause_holds_changes_on_the_queue_and_resume_syncs_them(stack: LocalDeployment) -> None:
    state_file = str(stack.state_file)
    assert (
        run(["--local", "--state-file", state_file, "pause", "--reason", "release", "--by", "ana"], out=io.StringIO())
        == 0
    )
    assert not stack.event_source_enabled  # the running stack read the CLI's flag
    time.sleep(1.5)  # a long poll already waiting (1 s) ends; as in Lambda, disabling stops the next receives

    # When a change arrives while paused
    receives = stack.poll_stats.receive_calls
    SqsChangeQueue(stack.resources.queue_url, client=stack.client("sqs")).send(
        QueuedChange(
            object_type="Account",
            record_id="PAUSED-1",
            updated_date=datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
            fields={"Name": "held", "CrmId": "0015g00000XyZ12AAB"},  # linked, as Zuora 360 requires
            notification_id="paused-1",
            received_at=datetime.now(UTC),
        )
    )
    time.sleep(2)  # real time: a poller that was still polling would have received the change by now
    probe = stack.run_probe_now()

    # Then it waits on the queue, unreceived, and the probe leaves the manual pause alone
    assert stack.poll_stats.receive_calls == receives
    assert stack.queue_depth()["visible"] == 1
    assert probe["paused"] is True
    assert probe["action"] == "manual"
    assert stack.standin is not None
    assert stack.standin.record(ACCOUNTS, "PAUSED-1") is None

    # And after resume it is written
    assert (
        run(["--local", "--state-file", state_file, "resume", "--reason", "done", "--by", "ana"], out=io.StringIO())
        == 0
    )
    stack.wait_until_drained(timeout=20)
    record = stack.standin.record(ACCOUNTS, "PAUSED-1")
    assert record is not None
    assert record["Name"] == "held"
