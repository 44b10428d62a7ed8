"""`nrtsync --stack NAME dashboard` against CloudWatch (moto): the deployed dashboard's widgets, the stack's metrics."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from nrtsync_cli.cli import run
from tests.support.dashboard import template_dashboard
from tests.support.sync_world import HISTORY_TABLE, STATE_TABLE, create_tables

pytestmark = pytest.mark.integration
STACK = "nrtsync-test"
REGION = "eu-west-1"


@pytest.fixture
def deployed() -> Iterator[None]:
    """A stack's outputs, tables, queues and dashboard (the template's, resolved), as CloudFormation leaves them."""
    with mock_aws():
        create_tables(boto3.client("dynamodb", region_name=REGION))
        sqs = boto3.client("sqs", region_name=REGION)
        outputs = {
            "SyncHistoryTableName": HISTORY_TABLE,
            "SyncStateTableName": STATE_TABLE,
            "CalloutQueueUrl": sqs.create_queue(QueueName="callouts")["QueueUrl"],
            "CalloutDeadLetterQueueUrl": sqs.create_queue(QueueName="callouts-dlq")["QueueUrl"],
        }
        template = {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
        boto3.client("cloudformation", region_name=REGION).create_stack(
            StackName=STACK, TemplateBody=json.dumps(template)
        )
        boto3.client("cloudwatch", region_name=REGION).put_dashboard(
            DashboardName=f"{STACK}-sync", DashboardBody=json.dumps(template_dashboard())
        )
        yield


def test_the_page_charts_the_stacks_metrics_in_seconds(deployed: None, tmp_path: Path) -> None:
    # Given the metrics function published an end-to-end P50 of 1,500 ms for the 5-minute window
    now = datetime.now(UTC)
    boto3.client("cloudwatch", region_name=REGION).put_metric_data(
        Namespace=f"NrtSync/{STACK}",
        MetricData=[
            {
                "MetricName": "EndToEndLatencyP50",
                "Dimensions": [{"Name": "Window", "Value": "5m"}, {"Name": "ObjectType", "Value": "All"}],
                "Timestamp": now - timedelta(minutes=2),
                "Value": 1500.0,
                "Unit": "Milliseconds",
            }
        ],
    )
    page_path = tmp_path / "prod.html"

    # When the operator writes the dashboard page (the stack after the command, like --json)
    out = io.StringIO()
    code = run(["dashboard", "--stack", STACK, "--region", REGION, "--output", str(page_path)], out=out)

    # Then the page is written, its path printed, and the latency chart holds the value in seconds
    assert code == 0
    assert str(page_path.resolve()) in out.getvalue()
    page = page_path.read_text(encoding="utf-8")
    [latency] = re.findall(r'data-widget="End-to-end latency[^"]*".*?</section>', page, re.DOTALL)
    assert '"name":"P50 5m"' in latency
    assert re.search(r'"name":"P50 5m".{0,400}"y":\[1\.5\]', latency, re.DOTALL)


def test_a_stack_without_the_dashboard_exits_3(
    deployed: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    boto3.client("cloudwatch", region_name=REGION).delete_dashboards(DashboardNames=[f"{STACK}-sync"])

    code = run(["--stack", STACK, "--region", REGION, "dashboard", "--output", str(tmp_path / "p.html")])

    assert code == 3
    assert capsys.readouterr().err.startswith(f"nrtsync: error: cannot read the dashboard {STACK}-sync")
    assert not (tmp_path / "p.html").exists()
