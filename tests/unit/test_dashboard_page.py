"""`nrtsync dashboard`'s page: a chart (or table) for every widget of the template's CloudWatch dashboard."""

from __future__ import annotations

import argparse
import html
import io
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nrtsync_cli.dashboard import MetricQuery, Series, Widget, evaluate, widget_data, widgets_of
from nrtsync_cli.dashboard_command import tables, write_dashboard
from nrtsync_local.template import load_template, resolve

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def template_dashboard() -> dict[str, Any]:
    """The template's dashboard body, resolved with a stack's names (as CloudFormation would)."""
    template = load_template()
    body = template["Resources"]["SyncDashboard"]["Properties"]["DashboardBody"]
    names = set(re.findall(r"\$\{([^}!]+)\}", body["Fn::Sub"]))
    refs = {name: name for name in names if name not in template["Parameters"]}
    refs |= {"AWS::StackName": "nrtsync-test", "AWS::Region": "eu-west-1"}
    resolved = resolve(body, template, refs=refs)
    assert resolved is not None
    parsed: dict[str, Any] = json.loads(resolved)
    return parsed


class RampSource:
    """Every metric rises by one a minute over the last 10 minutes; records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[MetricQuery] = []

    def series(self, queries: Sequence[MetricQuery], start: datetime, end: datetime) -> dict[str, Series]:
        self.asked.extend(queries)
        stamps = [end - timedelta(minutes=m) for m in range(10, 0, -1)]
        return {q.id: Series(stamps, [float(n * 1000) for n in range(10)]) for q in queries if q.expression is None}


class FakeOperations:
    def sessions(self, *, since: timedelta, limit: int) -> list[dict[str, Any]]:
        return [{"started_at": "2026-12-07T07:59:00+00:00", "records_in": 200, "written": 198, "failed": 2}]

    def failures(self, *, object_type: str | None, error_code: str | None) -> list[dict[str, Any]]:
        return [{"object_type": "Account", "record_id": "A1", "error_code": "DUPLICATE_VALUE"}]

    def alarms(self) -> list[dict[str, Any]] | None:
        return [{"state": "ALARM", "name": "nrtsync-test-dead-letters", "since": "2026-12-07T07:00:00+00:00"}]


def write_page(tmp_path: Path, body: dict[str, Any]) -> tuple[str, str]:
    args = argparse.Namespace(since=timedelta(hours=1), output=tmp_path / "page.html", stack="nrtsync-test", json=False)
    out = io.StringIO()
    path = write_dashboard(args, FakeOperations(), out, body=body, source=RampSource(), now=NOW)  # type: ignore[arg-type]
    return path.read_text(encoding="utf-8"), out.getvalue()


def test_the_page_has_a_chart_or_table_for_every_widget_of_the_templates_dashboard(tmp_path: Path) -> None:
    # Given the template's dashboard
    body = template_dashboard()
    titles = [w.title for w in widgets_of(body)]
    assert len(titles) == len(body["widgets"]) == len(set(titles))

    # When the page is written
    page, said = write_page(tmp_path, body)

    # Then every widget is a section with its plot (or the notes), plotly.js is inline once, nothing is fetched
    sections = re.findall(r'<section class="widget" data-widget="([^"]*)" data-kind="(\w+)"', page)
    assert [title for title, _ in sections] == [html_escape(t) for t in titles]
    for kind in ("metric", "log", "alarm"):
        assert any(k == kind for _, k in sections), kind
    plots = len(re.findall(r'class="plotly-graph-div"', page))
    assert plots == sum(1 for _, kind in sections if kind != "text")
    assert page.count("plotly.js v") >= 1  # the bundle's own banner: inline, not a CDN link
    assert not re.search(r"<script[^>]+src=", page)
    assert "dashboard written to" in said


def html_escape(text: str) -> str:
    return html.escape(text, quote=True)


def test_latency_charts_show_seconds_and_the_slo_lines(tmp_path: Path) -> None:
    widgets = widgets_of(template_dashboard())
    [latency] = [w for w in widgets if w.title.startswith("End-to-end latency")]

    lines = widget_data(latency, RampSource(), NOW - timedelta(hours=1), NOW)

    # the hidden millisecond metrics are read, the visible lines are their /1000 expressions
    assert set(lines) == {q.id for q in latency.queries if q.expression is not None}
    assert next(iter(lines.values())).values[-1] == 9.0
    assert {label for label, _ in latency.lines} == {"P50 SLO", "P90 SLO"}
    assert {value for _, value in latency.lines} == {120.0, 600.0}


def test_log_and_alarm_widgets_are_read_like_the_cli_reads_them() -> None:
    widgets = widgets_of(template_dashboard())

    found = tables(widgets, FakeOperations(), timedelta(hours=1))  # type: ignore[arg-type]

    history = next(t for title, t in found.items() if "Sync History" in title)
    assert history.rows[0][:3] == ("2026-12-07T07:59:00+00:00", "200", "198")
    failures = next(t for title, t in found.items() if "Failure list" in title)
    assert failures.rows[0][1:4] == ("Account", "A1", "DUPLICATE_VALUE")
    alarms = next(t for title, t in found.items() if title == "Alarms")
    assert alarms.rows == (("ALARM", "nrtsync-test-dead-letters", "2026-12-07T07:00:00+00:00"),)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [("a/1000", [0.001, 0.002]), ("a * 2", [2.0, 4.0]), ("a+1", [2.0, 3.0]), ("b/1000", None), ("a/b", None)],
)
def test_an_expression_is_a_metric_scaled_by_a_number(expression: str, expected: list[float] | None) -> None:
    data = {"a": Series([NOW, NOW], [1.0, 2.0])}
    result = evaluate(expression, data)
    assert (result.values if result else None) == expected


def test_a_widget_with_no_data_still_has_its_chart(tmp_path: Path) -> None:
    body = {"widgets": [{"type": "metric", "properties": {"title": "Empty", "metrics": [["NS", "M"]]}}]}

    class Nothing:
        def series(self, queries: Sequence[MetricQuery], start: datetime, end: datetime) -> dict[str, Series]:
            return {}

    args = argparse.Namespace(since=timedelta(hours=1), output=tmp_path / "p.html", stack="s", json=True)
    out = io.StringIO()
    page = write_dashboard(args, FakeOperations(), out, body=body, source=Nothing(), now=NOW).read_text()  # type: ignore[arg-type]

    assert "no data in this period" in page
    assert json.loads(out.getvalue())["widgets"] == 1
    assert widgets_of(body) == [
        Widget(kind="metric", title="Empty", queries=(MetricQuery(id="m0", label="M", namespace="NS", name="M"),))
    ]
