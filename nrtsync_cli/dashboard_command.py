"""``nrtsync dashboard``: writes the stack's dashboard, with its charts, to one HTML page and prints its path."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from nrtsync_cli.dashboard import CloudWatchSource, MetricSource, Table, Widget, render_page, widget_data, widgets_of
from nrtsync_cli.local_state import LocalStateError, read_local_state
from nrtsync_cli.operations import OperationError, Operations

DASHBOARD_COMMAND = "dashboard"
DEFAULT_OUTPUT = Path("nrtsync-dashboard.html")
# The local stack's namespace and name, as `make local` and the demo deploy it (the template's !Sub).
LOCAL_STACK_NAME = "nrtsync-local"
_SESSION_COLUMNS = ("started_at", "records_in", "written", "waiting", "failed", "api_calls", "latency_p90_ms")
_FAILURE_COLUMNS = ("failed_at", "object_type", "record_id", "error_code", "error_message")


def add_dashboard_command(
    add_command: Callable[[str, str], argparse.ArgumentParser], duration: Callable[[str], timedelta]
) -> None:
    sub = add_command(DASHBOARD_COMMAND, "the stack's CloudWatch dashboard, with its charts, as one HTML page")
    sub.add_argument("--output", type=Path, default=str(DEFAULT_OUTPUT), help="where to write the page")
    sub.add_argument("--since", type=duration, default="3h", help="the period the charts show, e.g. 1h, 6h, 7d")


def dashboard_body_of_stack(stack: str, cloudwatch: Any) -> dict[str, Any]:
    """The deployed dashboard's JSON (``<stack>-sync``, as the template names it)."""
    try:
        body = cloudwatch.get_dashboard(DashboardName=f"{stack}-sync")["DashboardBody"]
    except Exception as exc:
        raise OperationError(f"cannot read the dashboard {stack}-sync: {exc}") from exc
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def dashboard_body_of_template(stack_name: str, region: str) -> dict[str, Any]:
    """The template's dashboard, resolved for the local stack (a checkout: `make local` runs from one)."""
    try:
        from nrtsync_local.template import load_template, resolve  # noqa: PLC0415 - only in a checkout
    except ImportError as exc:
        raise OperationError("--local dashboard runs from a checkout (it reads template.yaml)") from exc
    template = load_template()
    body = template["Resources"]["SyncDashboard"]["Properties"]["DashboardBody"]
    names = set(re.findall(r"\$\{([^}!]+)\}", str(body.get("Fn::Sub", ""))))
    # Resources the local stack has no physical name for keep their logical id: their widgets show no data.
    refs = {name: name for name in names if name not in template.get("Parameters", {})}
    refs |= {"AWS::StackName": stack_name, "AWS::Region": region}
    resolved = resolve(body, template, refs=refs)
    if resolved is None:
        raise OperationError("the template's dashboard could not be resolved")
    parsed: dict[str, Any] = json.loads(resolved)
    return parsed


def local_target(state_file: Path) -> tuple[dict[str, Any], MetricSource]:
    try:
        local = read_local_state(state_file)
    except LocalStateError as exc:
        raise OperationError(str(exc)) from exc
    stack_name = str(local.values.get("stack_name", LOCAL_STACK_NAME))
    body = dashboard_body_of_template(stack_name, str(local.values.get("region", "eu-west-1")))
    return body, CloudWatchSource(local.client("cloudwatch"))


def tables(widgets: list[Widget], ops: Operations, since: timedelta) -> dict[str, Table]:
    """The log and alarm widgets as tables, read the way `sessions`, `failures` and `status` read them."""
    found = {}
    for widget in widgets:
        if widget.kind == "alarm":
            alarms = ops.alarms()
            found[widget.title] = (
                Table(("state", "alarm", "since"), tuple((a["state"], a["name"], str(a["since"])) for a in alarms))
                if alarms is not None
                else Table(("state", "alarm"), (), note="the local stack deploys no alarms")
            )
        elif widget.kind == "log" and "Sync History" in widget.title:
            rows = ops.sessions(since=since, limit=20)
            found[widget.title] = Table(_SESSION_COLUMNS, tuple(_row(r, _SESSION_COLUMNS) for r in rows))
        elif widget.kind == "log" and "Failure list" in widget.title:
            rows = ops.failures(object_type=None, error_code=None)[:50]
            found[widget.title] = Table(_FAILURE_COLUMNS, tuple(_row(r, _FAILURE_COLUMNS) for r in rows))
        elif widget.kind == "log":
            found[widget.title] = Table(("",), (), note="a Logs Insights query: open the CloudWatch dashboard")
    return found


def _row(item: Mapping[str, Any], columns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple("" if item.get(c) is None else str(item.get(c)) for c in columns)


def write_dashboard(
    args: argparse.Namespace,
    ops: Operations,
    out: TextIO,
    *,
    body: Mapping[str, Any],
    source: MetricSource,
    now: datetime | None = None,
) -> Path:
    """Renders the page from ``body``'s widgets and ``source``'s metrics; returns where it was written."""
    end = now or datetime.now(UTC)
    start = end - args.since
    widgets = widgets_of(body)
    data = {w.title: widget_data(w, source, start, end) for w in widgets if w.kind == "metric"}
    name = args.stack or LOCAL_STACK_NAME
    page = render_page(
        f"nrtsync dashboard: {name}",
        widgets,
        data,
        tables(widgets, ops, args.since),
        generated=f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC, rendered by nrtsync dashboard",
        period=(start, end),
    )
    path: Path = args.output
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    if getattr(args, "json", False):
        print(json.dumps({"path": str(path.resolve()), "widgets": len(widgets)}), file=out)
    else:
        print(f"dashboard written to {path.resolve()} ({len(widgets)} widgets)", file=out)
    return path
