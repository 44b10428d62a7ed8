"""The fault drill (nrtsync_local.drill.run): about a thousand changes through the local pipeline while Salesforce
fails in every way it can, the sync handler is killed twice and Zuora re-delivers and reorders; nothing may be
lost. The same drill, longer, is the soak: ``python -m nrtsync_local.drill --changes 20000``."""

from __future__ import annotations

import os

import pytest

from nrtsync_local.drill.run import DrillConfig, DrillReport, run_drill

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def report() -> DrillReport:
    config = DrillConfig(seed=int(os.environ.get("NRTSYNC_DRILL_SEED", DrillConfig().seed)))
    result = run_drill(config, log_level="WARNING")
    print("\n".join(result.lines()))  # shown with -s, and with the failure of any test below
    return result


def test_every_fault_was_injected(report: DrillReport) -> None:
    figures, waiting = report.figures, report.waiting_by_reason

    # Both kills happened, and the first left leases behind that had to expire
    assert sorted(k.kind for k in report.kills) == ["after-answer", "after-return"]
    assert all(k.leases for k in report.kills if k.kind == "after-answer")
    assert figures["handler_errors"] == 2

    # Salesforce failed in every planned way, and each made changes wait rather than fail
    assert waiting.get("UNABLE_TO_LOCK_ROW", 0) > 0
    assert waiting.get("SALESFORCE_UNAVAILABLE", 0) > 0
    assert waiting.get("REQUEST_LIMIT_EXCEEDED", 0) + waiting.get("API_BUDGET_REACHED", 0) > 0
    assert waiting.get("RECORD_BUSY", 0) > 0
    assert figures["injected_faults"] >= 10  # 3 + 6 API 503s and one token 503
    assert figures["token_requests"] >= 3  # the first token and one per expired session

    # Zuora's habits: both ingest paths, re-deliveries and reordering all happened and were recognised
    assert figures["sent_http"] > 0
    assert figures["sent_queue"] > 0
    assert figures["redeliveries"] > 0
    assert figures["reordered"] > 0
    assert figures["duplicates"] > 0
    assert figures["stale"] > 0
    assert figures["superseded"] > 0
    assert figures["invalid_sent"] >= 4


def test_nothing_is_lost_and_the_newest_version_wins(report: DrillReport) -> None:
    # Everything the drill checks: every record at its newest version, every change with a final outcome, the
    # failure list exactly the invalid changes, the DLQ and the queue empty.
    assert not report.problems, "\n".join(report.lines())


def test_the_drill_is_bounded_in_time(report: DrillReport) -> None:
    # The drill raises DrillTimeoutError if the queue does not drain; here: it drained soon after the last send
    assert report.figures["drain_seconds"] < 60
    assert report.figures["written"] >= report.figures["records"]
