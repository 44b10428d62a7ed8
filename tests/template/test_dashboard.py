"""The dashboard and alarms in template.yaml read exactly what the functions publish, so they cannot drift."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from nrtsync.app.ingest import report_callout
from nrtsync.app.metrics import report_metrics_run
from nrtsync.app.reconcile import report_reconcile
from nrtsync.app.sync import report_session
from nrtsync.observability import metrics
from nrtsync.observability.names import (
    BREAKER_METRIC_NAMES,
    DIMENSION_SETS,
    INGEST_METRIC_NAMES,
    METRIC_NAMES,
    RECONCILE_METRIC_NAMES,
    RUN_METRIC_NAMES,
    SYNC_SESSION_METRIC_NAMES,
    WINDOWS,
)
from nrtsync.ports.history import SessionSummary
from nrtsync.services.ingest.endpoint import IngestOutcome
from nrtsync.services.metrics.service import MetricsRunResult
from nrtsync.services.reconcile.service import ObjectReport, ReconcileResult
from nrtsync.services.sync.service import SyncResult
from nrtsync_local.template import load_template, resolve

NAMESPACE = "NrtSync/nrtsync-test"
REFS = {
    "AWS::StackName": "nrtsync-test",
    "AWS::Region": "eu-west-1",
    "CalloutQueue.QueueName": "q",
    "CalloutDeadLetterQueue.QueueName": "dlq",
    "IngestFunction": "ingest-fn",
    "SyncFunction": "sync-fn",
    "MetricsFunction": "metrics-fn",
    "SyncFunctionLogGroup": "/aws/lambda/sync",
    "ReconcileFunction": "reconcile-fn",
    "ReconcileFunctionLogGroup": "/aws/lambda/reconcile",
    "BackfillStateMachine": "arn:aws:states:eu-west-1:123456789012:stateMachine:nrtsync-test-backfill",
    "StageName": "prod",
}
MOMENT = datetime(2026, 1, 1, tzinfo=UTC)
PUBLISHED = set(DIMENSION_SETS)
OUR_NAMESPACE = "NrtSync/${AWS::StackName}"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def dashboard(template: dict[str, Any]) -> dict[str, Any]:
    body = template["Resources"]["SyncDashboard"]["Properties"]["DashboardBody"]
    alarm_arns = {f"{name}.Arn": f"arn:alarm:{name}" for name in _alarms(template)}
    resolved = resolve(body, template, refs=REFS | alarm_arns)
    assert resolved is not None, "the dashboard body names something the test does not resolve"
    parsed: dict[str, Any] = json.loads(resolved)
    return parsed


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"}


def _metrics(dashboard: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for widget in dashboard["widgets"]:
        for row in widget["properties"].get("metrics", []):
            if isinstance(row[0], str):
                rows.append(row)
    return rows


def test_every_custom_metric_on_the_dashboard_is_published(dashboard: dict[str, Any]) -> None:
    names = {row[1] for row in _metrics(dashboard) if row[0] == NAMESPACE}
    assert names, "the dashboard shows none of our metrics"
    assert names <= PUBLISHED, f"not published by any function: {sorted(names - PUBLISHED)}"


def test_only_our_namespace_and_aws_namespaces_appear(dashboard: dict[str, Any]) -> None:
    namespaces = {row[0] for row in _metrics(dashboard)}
    assert namespaces <= {NAMESPACE, "AWS/SQS", "AWS/Lambda", "AWS/ApiGateway", "AWS/States"}


def test_latency_graphs_show_p50_and_p90_for_every_window_with_slo_lines(dashboard: dict[str, Any]) -> None:
    shown = {(row[1], row[3]) for row in _metrics(dashboard) if row[0] == NAMESPACE and row[2:3] == ["Window"]}
    for metric in ("EndToEndLatencyP50", "EndToEndLatencyP90", "SyncLatencyP50", "SyncLatencyP90"):
        for window in WINDOWS:
            assert (metric, window) in shown
    latency = [w for w in dashboard["widgets"] if "latency" in w["properties"].get("title", "").lower()]
    slo_values = {a["value"] for w in latency for a in w["properties"].get("annotations", {}).get("horizontal", [])}
    assert {120, 600} <= slo_values  # the parameters' defaults, resolved


def test_sync_history_table_reads_fields_the_session_log_line_has(dashboard: dict[str, Any]) -> None:
    logged = set(SessionSummary(session_id="s", started_at=MOMENT, ended_at=MOMENT).as_log())
    [history] = [w for w in dashboard["widgets"] if w["type"] == "log" and "Sync History" in w["properties"]["title"]]
    query = history["properties"]["query"]
    fields = query.split("| fields ", 1)[1].split(" |", 1)[0].split(", ")
    assert set(fields) <= logged, f"not in the session log line: {set(fields) - logged}"
    assert "filter message = 'sync session'" in query


def test_alarms_watch_published_metrics_and_cover_the_promises(template: dict[str, Any]) -> None:
    alarms = {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    watched = set()
    for props in alarms.values():
        watched.add(props.get("MetricName"))
        for metric in props.get("Metrics", []):
            if "MetricStat" in metric:
                watched.add(metric["MetricStat"]["Metric"]["MetricName"])
    aws = {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage", "5XXError", "4XXError"}
    aws |= {"Errors", "Throttles", "ExecutionsFailed", "ExecutionsTimedOut"}  # the last two: the backfill's
    custom = watched - {None} - aws
    assert custom <= PUBLISHED
    assert {"EndToEndLatencyP50", "EndToEndLatencyP90", "ApiUsagePercent", "SyncPaused", "CalloutsRejected"} <= watched
    assert aws <= watched
    for props in alarms.values():
        # Latency and the breaker breach on missing data (tests/template/test_template.py says which); the rest do not.
        assert props["TreatMissingData"] in {"breaching", "notBreaching"}
        assert "AlarmActions" in props
        assert "OKActions" in props


def _alarm_metrics(props: dict[str, Any]) -> list[dict[str, Any]]:
    read = [props] + [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
    return [m for m in read if "MetricName" in m]


def test_the_new_alarms_watch_what_issue_11_asks(template: dict[str, Any]) -> None:
    alarms = _alarms(template)
    # The oldest change on the callout queue, against the P90 SLO
    age = alarms["CalloutQueueAgeAlarm"]
    assert (age["Namespace"], age["MetricName"]) == ("AWS/SQS", "ApproximateAgeOfOldestMessage")
    assert age["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["CalloutQueue", "QueueName"]}}]
    assert age["Threshold"] == {"Ref": "LatencyP90SloSeconds"}
    # A burst of refused callouts: the function's rejections and API Gateway's 4xx on the stage
    rejected = {
        (m["Namespace"] if isinstance(m["Namespace"], str) else "ours", m["MetricName"])
        for m in _alarm_metrics(alarms["CalloutsRejectedAlarm"])
    }
    assert {("ours", "CalloutsRejected"), ("AWS/ApiGateway", "4XXError")} <= rejected
    # The metrics function's errors and throttles
    metrics_fn = _alarm_metrics(alarms["MetricsFunctionFailingAlarm"])
    assert {m["MetricName"] for m in metrics_fn} == {"Errors", "Throttles"}
    assert {json.dumps(d) for m in metrics_fn for d in m["Dimensions"]} == {
        json.dumps({"Name": "FunctionName", "Value": {"Ref": "MetricsFunction"}})
    }
    # The breaker open longer than BreakerOpenAlarmMinutes, one-minute periods
    breaker = alarms["BreakerOpenAlarm"]
    assert breaker["MetricName"] == "SyncPaused"
    assert breaker["Dimensions"] == [{"Name": "service", "Value": "sync"}]
    assert breaker["Period"] == 60
    assert breaker["EvaluationPeriods"] == breaker["DatapointsToAlarm"] == {"Ref": "BreakerOpenAlarmMinutes"}
    assert (breaker["Statistic"], breaker["ComparisonOperator"], breaker["Threshold"]) == (
        "Minimum",
        "GreaterThanOrEqualToThreshold",
        1,
    )


def test_the_alarm_widget_shows_every_alarm(template: dict[str, Any], dashboard: dict[str, Any]) -> None:
    [widget] = [w for w in dashboard["widgets"] if w["type"] == "alarm"]
    assert sorted(widget["properties"]["alarms"]) == sorted(f"arn:alarm:{name}" for name in _alarms(template))


def test_the_auth_rejections_graph_reads_api_gateway_s_4xx(dashboard: dict[str, Any]) -> None:
    # Since issue 9 the 401s come from the gateway's authorizer: CalloutsRejected Reason=unauthenticated stays ~0.
    [row] = [r for r in _metrics(dashboard) if isinstance(r[-1], dict) and "auth" in r[-1].get("label", "")]
    assert row[:6] == ["AWS/ApiGateway", "4XXError", "ApiName", "nrtsync-test-callouts", "Stage", "prod"]


def test_the_sync_session_emits_exactly_the_names_the_dashboard_knows() -> None:
    # Given a session with an API usage reading
    session = SessionSummary(session_id="s", started_at=MOMENT, ended_at=MOMENT, api_usage_percent=12.5)

    # When it is reported
    metrics.clear_metrics()
    report_session(SyncResult(retry_message_ids=[], session=session, outcomes=[]))

    # Then every EMF metric name is one the dashboard test accepts
    assert set(metrics.metric_set) == set(SYNC_SESSION_METRIC_NAMES)
    metrics.clear_metrics()


def test_the_registry_lists_every_emitter_s_names_with_their_dimensions() -> None:
    emitted = {*METRIC_NAMES, *RUN_METRIC_NAMES, *SYNC_SESSION_METRIC_NAMES, *INGEST_METRIC_NAMES}
    emitted |= set(BREAKER_METRIC_NAMES) | set(RECONCILE_METRIC_NAMES)
    assert set(DIMENSION_SETS) == emitted


def test_the_ingest_and_metrics_reports_emit_exactly_their_registered_names() -> None:
    # Given a rejected callout and a metrics run
    rejected = IngestOutcome(status_code=400, reason="invalid_callout", body={"errors": []})
    run = MetricsRunResult(
        minute="2026-01-01T00:00",
        minute_items_read=0,
        history_items_skipped=0,
        hours_rolled=0,
        hours_not_rolled=0,
        metric_data_published=0,
        distribution_minutes_published=0,
        object_types=(),
    )

    # When they are reported
    metrics.clear_metrics()
    report_callout(rejected)
    callout_names = set(metrics.metric_set)
    metrics.clear_metrics()
    report_metrics_run(run)
    run_names = set(metrics.metric_set)
    metrics.clear_metrics()

    # Then the names are the registry's
    assert callout_names <= set(INGEST_METRIC_NAMES)
    assert run_names == set(RUN_METRIC_NAMES)


def test_the_reconcile_report_emits_exactly_its_registered_names() -> None:
    # Given a run that finished every object's window (so the watermark lag is known)
    run = ReconcileResult(
        started_at=MOMENT, objects=[ObjectReport(object_type="Account", finished=True, queued=2, watermark=MOMENT)]
    )

    # When it is reported
    metrics.clear_metrics()
    report_reconcile(run)
    names = set(metrics.metric_set)
    metrics.clear_metrics()

    # Then the names are the registry's
    assert names == set(RECONCILE_METRIC_NAMES)


def _watched(props: dict[str, Any]) -> list[tuple[Any, str, tuple[str, ...]]]:
    """(namespace, metric name, dimension names) of every metric an alarm reads."""
    metrics_read = [props] + [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
    return [
        (m.get("Namespace"), m["MetricName"], tuple(sorted(d["Name"] for d in m.get("Dimensions", []))))
        for m in metrics_read
        if "MetricName" in m
    ]


def _unemitted(alarms: dict[str, dict[str, Any]]) -> list[str]:
    """The alarms in our namespace that watch a name, or a name under a dimension set, no function emits."""
    wrong = []
    for alarm, props in alarms.items():
        for namespace, name, dimensions in _watched(props):
            if "NrtSync/" not in json.dumps(namespace):
                continue
            allowed = {tuple(sorted(dims)) for dims in DIMENSION_SETS.get(name, ())}
            if dimensions not in allowed:
                wrong.append(f"{alarm}: {name} {list(dimensions)}")
    return wrong


def test_every_alarm_watches_a_metric_under_dimensions_it_is_emitted_with(template: dict[str, Any]) -> None:
    alarms = _alarms(template)
    assert any("NrtSync/" in json.dumps(w[0]) for props in alarms.values() for w in _watched(props))
    assert _unemitted(alarms) == []


def test_an_alarm_on_a_metric_nobody_emits_is_caught() -> None:
    # Given alarms on a retired name, and on a session count under the window dimensions
    namespace = {"Fn::Sub": OUR_NAMESPACE}
    alarms: dict[str, dict[str, Any]] = {
        "Retired": {"Namespace": namespace, "MetricName": "SalesforceApiUsagePercent", "Dimensions": []},
        "WrongDimensions": {
            "Namespace": namespace,
            "MetricName": "RecordsFailed",
            "Dimensions": [{"Name": "Window", "Value": "5m"}, {"Name": "ObjectType", "Value": "All"}],
        },
    }

    # When / Then the check names both
    assert _unemitted(alarms) == [
        "Retired: SalesforceApiUsagePercent []",
        "WrongDimensions: RecordsFailed ['ObjectType', 'Window']",
    ]


def test_a_failed_or_timed_out_backfill_has_an_alarm_and_a_widget(
    template: dict[str, Any], dashboard: dict[str, Any]
) -> None:
    alarm = _alarms(template)["BackfillFailedAlarm"]
    watched = {m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert watched == {"ExecutionsFailed", "ExecutionsTimedOut"}
    for metric in alarm["Metrics"]:
        if "MetricStat" in metric:
            assert metric["MetricStat"]["Metric"]["Dimensions"] == [
                {"Name": "StateMachineArn", "Value": {"Ref": "BackfillStateMachine"}}
            ]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    graphed = {row[1] for row in _metrics(dashboard) if row[0] == "AWS/States"}
    assert {"ExecutionsFailed", "ExecutionsTimedOut"} <= graphed


def test_every_dashboard_graph_reads_a_metric_under_dimensions_it_is_emitted_with(dashboard: dict[str, Any]) -> None:
    wrong = []
    for row in _metrics(dashboard):
        if row[0] != NAMESPACE:
            continue
        pairs = [x for x in row[2:] if isinstance(x, str)]
        dimensions = tuple(sorted(pairs[0::2]))
        if dimensions not in {tuple(sorted(d)) for d in DIMENSION_SETS.get(row[1], ())}:
            wrong.append(f"{row[1]} {list(dimensions)}")
    assert wrong == []
