"""The dashboard and alarms in template.yaml read exactly what the functions publish, so they cannot drift."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from nrtsync.metrics.names import INGEST_METRIC_NAMES, METRIC_NAMES, SYNC_SESSION_METRIC_NAMES, WINDOWS
from nrtsync.observability import metrics
from nrtsync.ports.sync import SessionSummary
from nrtsync.sync import SyncResult, report_session
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
}
MOMENT = datetime(2026, 1, 1, tzinfo=UTC)
PUBLISHED = set(METRIC_NAMES) | set(SYNC_SESSION_METRIC_NAMES) | set(INGEST_METRIC_NAMES)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def dashboard(template: dict[str, Any]) -> dict[str, Any]:
    body = template["Resources"]["SyncDashboard"]["Properties"]["DashboardBody"]
    resolved = resolve(body, template, refs=REFS)
    assert resolved is not None, "the dashboard body names something the test does not resolve"
    parsed: dict[str, Any] = json.loads(resolved)
    return parsed


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
    assert namespaces <= {NAMESPACE, "AWS/SQS", "AWS/Lambda", "AWS/ApiGateway"}


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
    custom = watched - {None, "ApproximateNumberOfMessagesVisible", "5XXError", "Errors"}
    assert custom <= PUBLISHED
    assert {"EndToEndLatencyP50", "EndToEndLatencyP90", "ApiUsagePercent"} <= watched
    assert {"ApproximateNumberOfMessagesVisible", "5XXError", "Errors"} <= watched
    for props in alarms.values():
        assert props["TreatMissingData"] == "notBreaching"
        assert "AlarmActions" in props


def test_the_sync_session_emits_exactly_the_names_the_dashboard_knows() -> None:
    # Given a session with an API usage reading
    session = SessionSummary(session_id="s", started_at=MOMENT, ended_at=MOMENT, api_usage_percent=12.5)

    # When it is reported
    metrics.clear_metrics()
    report_session(SyncResult(retry_message_ids=[], session=session, outcomes=[]))

    # Then every EMF metric name is one the dashboard test accepts
    assert set(metrics.metric_set) == set(SYNC_SESSION_METRIC_NAMES)
    metrics.clear_metrics()
