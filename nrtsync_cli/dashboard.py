"""``nrtsync dashboard``: the stack's CloudWatch dashboard as one self-contained HTML page with its charts.

The widgets are the dashboard's own (its JSON body: the deployed dashboard for ``--stack``, the template's for
``--local``), so the page shows what the console shows: latency percentiles against the SLO lines, volume, API
usage, failures, the queues and the breaker. Metric widgets become line charts of the stack's metrics;
the Sync History, the failure list and the alarms become tables read with the CLI's own operations. The page
embeds plotly.js, so it opens offline.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

# GetMetricData takes at most 500 queries a call; a dashboard has far fewer, so one call per widget is enough.
MAX_QUERIES = 500
# Our expressions are a metric scaled by a constant (``e50m5/1000``: milliseconds to seconds).
_SCALED = re.compile(r"^\s*([a-zA-Z]\w*)\s*([*/+-])\s*([0-9.]+)\s*$")


@dataclass(frozen=True)
class MetricQuery:
    """One row of a metric widget: a metric (namespace, name, dimensions, statistic) or an expression over ids."""

    id: str
    label: str
    namespace: str = ""
    name: str = ""
    dimensions: tuple[tuple[str, str], ...] = ()
    stat: str = "Average"
    period: int = 300
    visible: bool = True
    right_axis: bool = False
    expression: str | None = None


@dataclass(frozen=True)
class Widget:
    """A dashboard widget, in the dashboard's 24-column grid."""

    kind: str  # metric, log, alarm, text
    title: str
    x: int = 0
    y: int = 0
    width: int = 6
    height: int = 6
    queries: tuple[MetricQuery, ...] = ()
    lines: tuple[tuple[str, float], ...] = ()  # horizontal annotations: the SLO lines
    y_label: str = ""
    markdown: str = ""


@dataclass
class Series:
    timestamps: list[datetime] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


class MetricSource(Protocol):
    """Where a widget's metrics come from: CloudWatch (or moto's, for the local stack)."""

    def series(self, queries: Sequence[MetricQuery], start: datetime, end: datetime) -> dict[str, Series]:
        """Each metric query's data points in [start, end], by query id (expressions are not asked for)."""
        ...


def widgets_of(body: Mapping[str, Any]) -> list[Widget]:
    """The widgets of a CloudWatch dashboard body (the JSON of ``DashboardBody``), in reading order."""
    found = []
    for number, raw in enumerate(body.get("widgets", [])):
        props = raw.get("properties", {})
        kind = str(raw.get("type", "metric"))
        title = str(props.get("title") or ("notes" if kind == "text" else f"widget {number + 1}"))
        found.append(
            Widget(
                kind=kind,
                title=title,
                x=int(raw.get("x", 0)),
                y=int(raw.get("y", 0)),
                width=int(raw.get("width", 6)),
                height=int(raw.get("height", 6)),
                queries=tuple(_queries(props)) if kind == "metric" else (),
                lines=tuple(
                    (str(a.get("label", "")), float(a["value"]))
                    for a in props.get("annotations", {}).get("horizontal", [])
                    if "value" in a
                ),
                y_label=str(props.get("yAxis", {}).get("left", {}).get("label", "")),
                markdown=str(props.get("markdown", "")),
            )
        )
    return sorted(found, key=lambda w: (w.y, w.x))


def _queries(props: Mapping[str, Any]) -> list[MetricQuery]:
    queries = []
    default_stat, default_period = str(props.get("stat", "Average")), int(props.get("period", 300))
    for number, row in enumerate(props.get("metrics", [])):
        options = row[-1] if row and isinstance(row[-1], dict) else {}
        query_id = str(options.get("id", f"m{number}"))
        if "expression" in options and len(row) == 1:
            label = str(options.get("label", options["expression"]))
            queries.append(MetricQuery(id=query_id, label=label, expression=str(options["expression"])))
            continue
        parts = [str(p) for p in (row[:-1] if options else row)]
        namespace, name, pairs = parts[0], parts[1], parts[2:]
        dimensions = tuple(zip(pairs[0::2], pairs[1::2], strict=False))
        label = str(options.get("label") or " ".join([name, *(v for _, v in dimensions)]))
        queries.append(
            MetricQuery(
                id=query_id,
                label=label,
                namespace=namespace,
                name=name,
                dimensions=dimensions,
                stat=str(options.get("stat", default_stat)),
                period=int(options.get("period", default_period)),
                visible=bool(options.get("visible", True)),
                right_axis=options.get("yAxis") == "right",
            )
        )
    return queries


def evaluate(expression: str, data: Mapping[str, Series]) -> Series | None:
    """An expression of the form ``id <op> number`` over ``data``; None for any other (shown as not supported)."""
    match = _SCALED.match(expression)
    if match is None or match[1] not in data:
        return None
    source, operator, number = data[match[1]], match[2], float(match[3])
    operations: dict[str, Callable[[float], float]] = {
        "/": lambda v: v / number,
        "*": lambda v: v * number,
        "+": lambda v: v + number,
        "-": lambda v: v - number,
    }
    return Series(list(source.timestamps), [operations[operator](v) for v in source.values])


class CloudWatchSource:
    """Metrics through GetMetricData (a boto3 CloudWatch client: the stack's, or moto's for the local stack)."""

    def __init__(self, cloudwatch: Any) -> None:
        self._cloudwatch = cloudwatch

    def series(self, queries: Sequence[MetricQuery], start: datetime, end: datetime) -> dict[str, Series]:
        metric_queries = [q for q in queries if q.expression is None][:MAX_QUERIES]
        if not metric_queries:
            return {}
        asked = [
            {
                "Id": q.id,
                "MetricStat": {
                    "Metric": {
                        "Namespace": q.namespace,
                        "MetricName": q.name,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in q.dimensions],
                    },
                    "Period": q.period,
                    "Stat": q.stat,
                },
                "ReturnData": True,
            }
            for q in metric_queries
        ]
        found: dict[str, Series] = {}
        kwargs: dict[str, Any] = {"MetricDataQueries": asked, "StartTime": start, "EndTime": end}
        while True:
            page = self._cloudwatch.get_metric_data(**kwargs)
            for result in page.get("MetricDataResults", []):
                series = found.setdefault(str(result["Id"]), Series())
                points = sorted(zip(result.get("Timestamps", []), result.get("Values", []), strict=False))
                series.timestamps.extend(t for t, _ in points)
                series.values.extend(float(v) for _, v in points)
            if not page.get("NextToken"):
                return found
            kwargs["NextToken"] = page["NextToken"]


def widget_data(widget: Widget, source: MetricSource, start: datetime, end: datetime) -> dict[str, Series]:
    """The visible lines of a metric widget, expressions computed from the metrics they read."""
    data = source.series(widget.queries, start, end)
    shown: dict[str, Series] = {}
    for query in widget.queries:
        if query.expression is not None:
            computed = evaluate(query.expression, data)
            if computed is not None and query.visible:
                shown[query.id] = computed
        elif query.visible:
            shown[query.id] = data.get(query.id, Series())
    return shown


def render_page(
    title: str,
    widgets: Sequence[Widget],
    data: Mapping[str, Mapping[str, Series]],
    tables: Mapping[str, Table],
    *,
    generated: str,
    period: tuple[datetime, datetime] | None = None,
) -> str:
    """One self-contained HTML page: a chart (or table) per widget, laid out on the dashboard's grid."""
    import plotly.graph_objects as go  # noqa: PLC0415 - only this command needs plotly, not the others' start

    blocks = []
    include_js: bool | str = True  # plotly.js once, inline: the page needs no network
    for number, widget in enumerate(widgets):
        if widget.kind == "text":
            inner = f'<div class="text">{_markdown(widget.markdown)}</div>'
        else:
            figure = (
                _line_chart(go, widget, data.get(widget.title, {}), period)
                if widget.kind == "metric"
                else _table(go, widget, tables.get(widget.title, Table(("",), (), note="no data source")))
            )
            inner = figure.to_html(
                full_html=False,
                include_plotlyjs=include_js,
                div_id=f"widget-{number}",
                config={"displaylogo": False, "responsive": True},
            )
            include_js = False
        style = f"grid-column: {widget.x + 1} / span {widget.width}; min-height: {widget.height * 44}px"
        blocks.append(
            f'<section class="widget" data-widget="{html.escape(widget.title, quote=True)}" '
            f'data-kind="{widget.kind}" style="{style}">{inner}</section>'
        )
    return _PAGE.format(title=html.escape(title), generated=html.escape(generated), widgets="\n".join(blocks))


def _line_chart(go: Any, widget: Widget, lines: Mapping[str, Series], period: tuple[datetime, datetime] | None) -> Any:
    figure = go.Figure()
    labels = {q.id: q for q in widget.queries}
    for query_id, series in lines.items():
        query = labels[query_id]
        figure.add_trace(
            go.Scatter(
                x=[t.isoformat() for t in series.timestamps],
                y=series.values,
                mode="lines+markers",
                name=query.label,
                yaxis="y2" if query.right_axis else "y",
            )
        )
    for label, value in widget.lines:
        figure.add_hline(y=value, line_dash="dash", line_color="#d62728", annotation_text=label)
    empty = not any(series.values for series in lines.values())
    figure.update_layout(
        title={"text": widget.title, "font": {"size": 14}},
        height=max(widget.height * 44, 220),
        margin={"l": 50, "r": 50, "t": 40, "b": 30},
        legend={"orientation": "h", "y": -0.2},
        xaxis={"type": "date", "range": [t.isoformat() for t in period]} if period else {"type": "date"},
        yaxis={"title": widget.y_label, "rangemode": "tozero"},
        yaxis2={"overlaying": "y", "side": "right", "rangemode": "tozero"},
        annotations=[{"text": "no data in this period", "showarrow": False, "xref": "paper", "yref": "paper"}]
        if empty
        else [],
    )
    return figure


def _table(go: Any, widget: Widget, table: Table) -> Any:
    columns: list[Any] = list(zip(*table.rows, strict=False)) if table.rows else [[] for _ in table.columns]
    figure = go.Figure(go.Table(header={"values": list(table.columns)}, cells={"values": columns}))
    title = widget.title + (f" ({table.note})" if table.note else "")
    figure.update_layout(
        title={"text": title, "font": {"size": 14}},
        height=max(widget.height * 44, 220),
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return figure


def _markdown(text: str) -> str:
    """Enough of the text widget's markdown for a heading, emphasis and code spans."""
    lines = []
    for raw in html.escape(text).split("\n"):
        heading = re.match(r"^(#+) (.*)$", raw)
        block = f"<h2>{heading[2]}</h2>" if heading else f"<p>{raw}</p>"
        block = re.sub(r"`([^`]+)`", r"<code>\1</code>", block)
        lines.append(re.sub(r"\*([^*]+)\*", r"<em>\1</em>", block))
    return "".join(lines)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 16px; background: #f6f7f9; color: #16191f; }}
header {{ margin-bottom: 12px; }}
header h1 {{ font-size: 20px; margin: 0; }}
header p {{ margin: 4px 0 0; color: #545b64; font-size: 13px; }}
.grid {{ display: grid; grid-template-columns: repeat(24, 1fr); gap: 8px; }}
.widget {{ background: #fff; border: 1px solid #d5dbdb; border-radius: 4px; padding: 4px; overflow: hidden; }}
.text {{ padding: 4px 12px; font-size: 13px; }}
.text h2 {{ font-size: 16px; }}
</style>
</head>
<body>
<header><h1>{title}</h1><p>{generated}</p></header>
<main class="grid">
{widgets}
</main>
</body>
</html>
"""
