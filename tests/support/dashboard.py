"""The dashboard page's test helpers: the template's dashboard resolved, a metric source and operations to draw."""

from __future__ import annotations

import argparse
import io
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from nrtsync_cli.dashboard import MetricQuery, Series
from nrtsync_cli.dashboard_command import write_dashboard
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
