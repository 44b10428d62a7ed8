"""`nrtsync dashboard`'s page: a chart (or table) for every widget of the template's CloudWatch dashboard."""

from __future__ import annotations

import argparse
import html
import io
import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from nrtsync_cli.dashboard import MetricQuery, Series, Widget, evaluate, widget_data, widgets_of
from nrtsync_cli.dashboard_command import tables, write_dashboard
from tests.support.dashboard import NOW, FakeOperations, RampSource, template_dashboard, write_page


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
