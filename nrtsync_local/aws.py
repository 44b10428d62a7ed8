"""moto in server mode with the stack's resources, created from template.yaml's own properties."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from nrtsync_local.moto_atomic import make_dynamodb_writes_atomic
from nrtsync_local.template import (
    TemplateError,
    load_template,
    queue_attributes,
    redrive_target,
    table_definition,
    ttl_attribute,
)

REGION = "eu-west-1"
STACK = "nrtsync-local"


@dataclass(frozen=True)
class LocalResources:
    """What the handlers and the operator's tools need to find the local stack's resources."""

    aws_endpoint_url: str
    region: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    state_table: str
    history_table: str
    callout_secret_id: str
    salesforce_secret_id: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class MotoServer:
    """moto's HTTP server on 127.0.0.1 and a free port, in this process (so its DynamoDB can be made atomic)."""

    def __init__(self) -> None:
        make_dynamodb_writes_atomic()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""

    def start(self) -> str:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self) -> None:
        self._server.stop()


def client(service: str, endpoint_url: str, region: str = REGION) -> Any:
    """A boto3 client of the local stack (dummy credentials: moto accepts any)."""
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - moto's dummy credentials
    )


def provision(
    endpoint_url: str,
    *,
    callout_credentials: dict[str, str],
    salesforce_credentials: dict[str, str],
    region: str = REGION,
    template: dict[str, Any] | None = None,
    stack: str = STACK,
) -> LocalResources:
    """Create the queues, tables and secrets as the template declares them."""
    template = template or load_template()
    sqs = client("sqs", endpoint_url, region)
    dynamodb = client("dynamodb", endpoint_url, region)
    secrets = client("secretsmanager", endpoint_url, region)

    dlq_logical = redrive_target(template, "CalloutQueue")
    if dlq_logical is None:
        raise TemplateError("the template's CalloutQueue has no dead-letter queue")
    dlq_url = sqs.create_queue(QueueName=f"{stack}-{dlq_logical}", Attributes=queue_attributes(template, dlq_logical))[
        "QueueUrl"
    ]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=f"{stack}-CalloutQueue", Attributes=queue_attributes(template, "CalloutQueue", dlq_arn=dlq_arn)
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    tables = {}
    for logical_id in ("SyncStateTable", "SyncHistoryTable"):
        name = f"{stack}-{logical_id}"
        dynamodb.create_table(TableName=name, **table_definition(template, logical_id))
        ttl = ttl_attribute(template, logical_id)
        if ttl:
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl}
            )
        tables[logical_id] = name

    callout_secret = secrets.create_secret(Name=f"{stack}-CalloutSecret", SecretString=json.dumps(callout_credentials))[
        "ARN"
    ]
    salesforce_secret = secrets.create_secret(
        Name=f"{stack}-SalesforceSecret", SecretString=json.dumps(salesforce_credentials)
    )["ARN"]
    return LocalResources(
        aws_endpoint_url=endpoint_url,
        region=region,
        queue_url=queue_url,
        queue_arn=queue_arn,
        dlq_url=dlq_url,
        state_table=tables["SyncStateTable"],
        history_table=tables["SyncHistoryTable"],
        callout_secret_id=callout_secret,
        salesforce_secret_id=salesforce_secret,
    )
