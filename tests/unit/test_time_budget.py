"""Every AWS client gives up within its function's time: the limits rule and what the functions build with it."""

from __future__ import annotations

import pytest

from nrtsync.adapters.aws.clients import client_config
from nrtsync.app.authorizer import AUTHORIZER_RESERVE_SECONDS, AUTHORIZER_TIMEOUT_SECONDS
from nrtsync.app.ingest import INGEST_RESERVE_SECONDS, INGEST_SHARES, INGEST_TIMEOUT_SECONDS
from nrtsync.domain.time_budget import (
    MIN_TRY_SECONDS,
    PUBLISH_CALL,
    STANDARD_CALL,
    CallLimits,
    backoff_bound,
    limits_within,
    split_remaining,
)
from nrtsync_local.template import function_properties, load_template


def test_the_backoff_bound_is_botocores_standard_mode() -> None:
    # Waits of at most 1, 2, 4... seconds between attempts (random() * 2 ** (attempt - 1))
    assert [backoff_bound(n) for n in (1, 2, 3, 4)] == [0, 1, 3, 7]


@pytest.mark.parametrize("seconds", [0.05, 0.5, 1.0, 2.4, 3.6, 5.4, 9.0, 30.0])
def test_the_limits_fit_the_seconds_given(seconds: float) -> None:
    limits = limits_within(seconds)
    assert limits.worst_case_seconds <= max(seconds, 0.1) + 1e-9
    assert 1 <= limits.max_attempts <= 3
    assert limits.connect_timeout <= 2.0
    assert limits.read_timeout <= 5.0


def test_less_time_means_fewer_attempts_not_hopeless_ones() -> None:
    # 9 s: three tries of 2 s; 2.4 s: two tries (three would leave under MIN_TRY_SECONDS each); 1 s: one try
    assert limits_within(9.0).max_attempts == 3
    assert limits_within(2.4).max_attempts == 2
    assert limits_within(1.0).max_attempts == 1
    for seconds in (1.0, 2.4, 9.0):
        limits = limits_within(seconds)
        assert limits.connect_timeout + limits.read_timeout >= MIN_TRY_SECONDS


def test_shares_cannot_promise_more_time_than_there_is() -> None:
    with pytest.raises(ValueError, match="more than the time"):
        split_remaining(10, {"a": 0.7, "b": 0.4}, reserve_seconds=1)


def test_the_config_carries_the_limits() -> None:
    config = client_config(CallLimits(connect_timeout=1.5, read_timeout=2.5, max_attempts=2))
    # botocore's Config sets its options as attributes its stubs do not declare
    options = {name: getattr(config, name) for name in ("connect_timeout", "read_timeout", "retries")}
    assert options == {
        "connect_timeout": 1.5,
        "read_timeout": 2.5,
        "retries": {"mode": "standard", "total_max_attempts": 2},
    }


def _timeout(function: str) -> float:
    return float(function_properties(load_template(), function)["Timeout"])


def test_the_assemblies_know_their_functions_timeouts() -> None:
    assert _timeout("IngestFunction") == INGEST_TIMEOUT_SECONDS
    assert _timeout("CalloutAuthorizerFunction") == AUTHORIZER_TIMEOUT_SECONDS


@pytest.mark.parametrize("remaining", [INGEST_TIMEOUT_SECONDS, 6.0, 2.0])
def test_a_callout_gives_up_on_its_secret_and_its_queue_in_time_to_answer(remaining: float) -> None:
    # Given the invocation's time left when the clients are built
    limits = split_remaining(remaining, INGEST_SHARES, reserve_seconds=INGEST_RESERVE_SECONDS)
    # Then a cold secret read and a send, both as slow as their limits allow, leave the reserve to answer 503
    worst = limits["secret"].worst_case_seconds + limits["queue"].worst_case_seconds
    assert worst <= remaining - INGEST_RESERVE_SECONDS + 1e-9


def test_the_authorizer_gives_up_on_its_secret_in_time() -> None:
    [limits] = split_remaining(AUTHORIZER_TIMEOUT_SECONDS, {"secret": 1.0}, reserve_seconds=0.5).values()
    assert limits.worst_case_seconds <= AUTHORIZER_TIMEOUT_SECONDS - AUTHORIZER_RESERVE_SECONDS
    # botocore's defaults, which the authorizer had: 60 s to connect, 60 s to read, 3 attempts (legacy mode)
    assert CallLimits(60, 60, 3).worst_case_seconds > AUTHORIZER_TIMEOUT_SECONDS


@pytest.mark.parametrize("function", ["SyncFunction", "MetricsFunction", "ReconcileFunction", "BackfillFunction"])
def test_a_call_without_a_budget_takes_under_half_its_functions_timeout(function: str) -> None:
    for limits in (STANDARD_CALL, PUBLISH_CALL):
        assert limits.worst_case_seconds <= _timeout(function) / 2
