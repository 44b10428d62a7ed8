"""Security properties: nothing secret or personal in the logs, and the template's protections in place.

What the logs may hold (docs/SECURITY.md): record ids, object types, notification ids, session ids, error codes,
counts and latencies. What they must not: passwords, the Authorization header or its token, the HMAC key,
Salesforce tokens or client secrets, and field values of a change (customer names, amounts: personal data).
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import functions.ingest.app as ingest_app
from nrtsync.app.sync import report_session
from nrtsync.domain.models.salesforce import SalesforceCredentials
from nrtsync.services.ingest.endpoint import CalloutEndpoint
from nrtsync.services.ingest.settings import IngestSettings
from nrtsync.services.sync.service import QueueMessage
from nrtsync_fakes.queue import MemoryQueue
from nrtsync_fakes.secrets import MemorySecrets
from nrtsync_local.template import load_template
from tests.support.events import (
    CALLOUT_PASSWORD,
    basic_authorization,
    callout_secret,
    load_event,
    with_fields,
    with_headers,
)
from tests.support.lambda_context import FakeLambdaContext

HMAC_KEY = "security-test-hmac-key-do-not-log"
SF_SECRET = "sf-client-secret-do-not-log"
SF_TOKEN = "00Dxx0000000001!AQsf-access-token-do-not-log"
# Field values of the sample account callout: personal data that must not reach the logs.
PERSONAL = ["Acme Widgets Ltd", "A00000142", "0015g00000XyZ12AAB"]
CUSTOMER = "Jane Q. Customer-Doe"

Template = dict[str, Any]


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Any:
    """Everything Powertools writes (stdout) and every record of the standard logging tree, as one text."""
    # tests/conftest.py points Powertools' handler at the current stdout, so capsys sees it.
    capsys.readouterr()
    # INFO, as deployed (LOG_LEVEL); botocore at DEBUG logs request bodies, which is why it must stay off.
    caplog.set_level(logging.INFO)

    def text() -> str:
        captured = capsys.readouterr()
        records = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
        return captured.out + captured.err + records

    return text


def assert_no_secrets(output: str) -> None:
    token = basic_authorization().split(" ", 1)[1]
    for secret in (CALLOUT_PASSWORD, token, HMAC_KEY, SF_SECRET, SF_TOKEN):
        assert secret not in output
    assert "Basic " not in output
    assert '"Authorization":' not in output
    assert '"authorization":' not in output


def assert_no_personal_data(output: str) -> None:
    for value in [*PERSONAL, CUSTOMER]:
        assert value not in output, f"{value!r} (a field value) reached the logs"


# --- ingest ----------------------------------------------------------------------------------------------------


def _signed(event: dict[str, Any]) -> dict[str, Any]:
    import hashlib  # noqa: PLC0415
    import hmac  # noqa: PLC0415

    body = event["body"].encode()
    return with_headers(event, X_Zuora_Signature=hmac.new(HMAC_KEY.encode(), body, hashlib.sha256).hexdigest())


INGEST_CASES = {
    "accepted": (_signed, False, 200),
    "unauthenticated": (
        lambda e: with_headers(_signed(e), Authorization=basic_authorization(password="guess")),
        False,
        401,
    ),
    "invalid": (lambda e: _signed(with_fields(e, updatedDate="03/05/2024 10:22", id="bad id!")), False, 422),
    "bad_signature": (lambda e: with_headers(e, X_Zuora_Signature="00" * 32), False, 403),
    "queue_down": (_signed, True, 503),
}


@pytest.mark.parametrize("case", INGEST_CASES)
def test_ingest_logs_hold_no_credentials_and_no_field_values(case: str, logs: Any) -> None:
    # Given
    build, queue_down, status = INGEST_CASES[case]
    event = build(copy.deepcopy(load_event("callout_account")))
    settings = IngestSettings.from_env({"CALLOUT_QUEUE_URL": "q", "CALLOUT_SECRET_ID": "s"})
    ingest_app.endpoint.use(
        CalloutEndpoint(
            settings,
            queue=MemoryQueue(failing=queue_down),
            secrets=MemorySecrets(default=callout_secret(hmac_key=HMAC_KEY)),
        )
    )

    # When
    try:
        response = ingest_app.lambda_handler(event, FakeLambdaContext())
    finally:
        ingest_app.endpoint.use(None)

    # Then
    assert response["statusCode"] == status, response["body"]
    output = logs()
    assert "callout" in output  # the outcome was logged at all
    assert_no_secrets(output)
    assert_no_personal_data(output)
    if status in (200, 503):
        assert "8ad09be48db5aa2a018dc0b0c41a7d2e" in output  # the record id is what an operator needs


def test_salesforce_credentials_keep_their_secrets_out_of_repr() -> None:
    credentials = SalesforceCredentials.model_validate(
        {
            "auth_flow": "client_credentials",
            "login_url": "https://acme.my.salesforce.com",
            "client_id": "id",
            "client_secret": SF_SECRET,
        }
    )

    assert SF_SECRET not in repr(credentials)
    assert SF_SECRET not in str(credentials)
    assert SF_SECRET not in f"{credentials!r} {credentials}"


# --- sync --------------------------------------------------------------------------------------------------------


@pytest.fixture
def sync_world() -> Iterator[Any]:
    import boto3  # noqa: PLC0415
    from moto import mock_aws  # noqa: PLC0415

    from tests.support.sync_world import SyncWorld, create_tables  # noqa: PLC0415

    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        create_tables(client)
        yield SyncWorld(dynamodb=client)


def _message(message_id: str, body: str) -> QueueMessage:
    return QueueMessage(message_id=message_id, receipt_handle=f"r-{message_id}", body=body)


def _change_body(record_id: str, **fields: Any) -> str:
    from tests.support.sync_world import change  # noqa: PLC0415

    return change("Account", record_id, **fields).model_dump_json()


def test_a_sync_session_with_refusals_logs_codes_and_ids_not_values(sync_world: Any, logs: Any) -> None:
    # Given a written record, a record Salesforce refuses, and one whose Salesforce call fails outright
    sync_world.salesforce.refuse["A-REFUSED"] = ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Name is not allowed")
    messages = [
        _message("m1", _change_body("A-OK", Name=CUSTOMER)),
        _message("m2", _change_body("A-REFUSED", Name=CUSTOMER)),
    ]

    # When
    result = sync_world.run(*messages)
    report_session(result)

    # Then
    output = logs()
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in output
    assert "A-REFUSED" in output
    assert_no_secrets(output)
    assert_no_personal_data(output)


def test_a_malformed_message_logs_no_field_values(sync_world: Any, logs: Any) -> None:
    # A message missing its required keys: pydantic's "Field required" error quotes the whole input
    body = json.dumps({"fields": {"Name": CUSTOMER}})

    report_session(sync_world.run(_message("m3", body)))

    output = logs()
    assert "MALFORMED_MESSAGE" in output
    assert_no_personal_data(output)


def test_a_mapping_error_logs_no_field_values(sync_world: Any, logs: Any) -> None:
    report_session(sync_world.run(_message("m4", _change_body("A-MAP", Name="x", Balance=CUSTOMER))))

    output = logs()
    assert "MAPPING_ERROR" in output
    assert_no_personal_data(output)


# --- the template ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template()


def resources(template: Template, *types: str) -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in template["Resources"].items() if spec["Type"] in types}


def test_the_only_route_is_post_callouts_on_our_api_with_no_bypass(template: Template) -> None:
    # Our Basic check is the authentication; an unauthenticated route elsewhere would bypass it.
    apis = resources(
        template,
        "AWS::Serverless::Api",
        "AWS::Serverless::HttpApi",
        "AWS::ApiGateway::RestApi",
        "AWS::ApiGatewayV2::Api",
    )
    assert set(apis) == {"CalloutApi"}
    api = apis["CalloutApi"]["Properties"]
    assert "DefinitionBody" not in api
    assert "DefinitionUri" not in api
    routes = []
    for name, spec in resources(template, "AWS::Serverless::Function").items():
        for event in spec["Properties"].get("Events", {}).values():
            if event["Type"] in {"Api", "HttpApi"}:
                props = event["Properties"]
                routes.append((name, props["Path"], props["Method"].upper(), props.get("RestApiId")))
                assert "Auth" not in props or props["Auth"].get("Authorizer") != "NONE"
    assert routes == [("IngestFunction", "/callouts", "POST", {"Ref": "CalloutApi"})]
    urls = list(resources(template, "AWS::Lambda::Url", "AWS::Lambda::Permission"))
    assert urls == []  # no function URL, no hand-made invoke permission


def test_the_stage_is_throttled_for_every_method(template: Template) -> None:
    [settings] = [
        s
        for s in template["Resources"]["CalloutApi"]["Properties"]["MethodSettings"]
        if s["ResourcePath"] == "/*" and s["HttpMethod"] == "*"
    ]
    assert settings["ThrottlingRateLimit"] == {"Ref": "ApiThrottleRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ApiThrottleBurstLimit"}
    for parameter in ("ApiThrottleRateLimit", "ApiThrottleBurstLimit"):
        assert "MaxValue" in template["Parameters"][parameter]


def test_the_payload_limit_is_in_place_and_below_the_queue_message_size(template: Template) -> None:
    env = template["Resources"]["IngestFunction"]["Properties"]["Environment"]["Variables"]
    assert env["MAX_CALLOUT_BYTES"] == {"Ref": "MaxCalloutBytes"}
    queue_max = int(template["Resources"]["CalloutQueue"]["Properties"]["MaximumMessageSize"])
    assert int(template["Parameters"]["MaxCalloutBytes"]["MaxValue"]) <= queue_max // 2


def test_the_source_allow_list_reaches_the_ingest_function(template: Template) -> None:
    env = template["Resources"]["IngestFunction"]["Properties"]["Environment"]["Variables"]
    assert env["ALLOWED_SOURCE_CIDRS"] == {"Ref": "AllowedSourceCidrs"}


def test_queues_tables_and_topics_are_encrypted_at_rest(template: Template) -> None:
    for name, spec in resources(template, "AWS::SQS::Queue").items():
        props = spec["Properties"]
        assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props, name
    for name, spec in resources(template, "AWS::DynamoDB::Table").items():
        assert spec["Properties"]["SSESpecification"]["SSEEnabled"] is True, name
    for name, spec in resources(template, "AWS::SNS::Topic").items():
        assert spec["Properties"].get("KmsMasterKeyId"), name
    assert resources(template, "AWS::SQS::Queue")
    assert resources(template, "AWS::DynamoDB::Table")


def test_every_log_group_has_a_retention_and_every_function_logs_to_one(template: Template) -> None:
    groups = resources(template, "AWS::Logs::LogGroup")
    for name, spec in groups.items():
        assert spec["Properties"].get("RetentionInDays"), name
    for name, spec in resources(template, "AWS::Serverless::Function").items():
        # Without LoggingConfig Lambda creates /aws/lambda/<name> itself, kept forever.
        assert spec["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] in groups, name
    access_log = template["Resources"]["CalloutApi"]["Properties"]["AccessLogSetting"]["DestinationArn"]
    assert access_log["Fn::GetAtt"][0] in groups


def _statements(template: Template) -> Iterator[tuple[str, Any]]:
    for name, spec in resources(template, "AWS::Serverless::Function").items():
        for policy in spec["Properties"].get("Policies", []):
            assert isinstance(policy, dict), f"{name}: a managed policy by name ({policy}) is not allowed"
            yield name, policy


def test_every_function_policy_names_its_resources(template: Template) -> None:
    # SAM policy templates take the resource they grant on; inline statements must name it too.
    named_templates = {"SQSSendMessagePolicy": "QueueName", "DynamoDBCrudPolicy": "TableName"}
    named_templates |= {"DynamoDBReadPolicy": "TableName"}
    named_templates |= {"AWSSecretsManagerGetSecretValuePolicy": "SecretArn"}
    for name, policy in _statements(template):
        if "Statement" not in policy:
            [(kind, args)] = policy.items()
            assert kind in named_templates, f"{name}: policy template {kind} not reviewed"
            assert args.get(named_templates[kind]), f"{name}: {kind} without a resource"
            continue
        for statement in policy["Statement"]:
            resource = statement["Resource"]
            if resource == "*" and statement["Action"] == "lambda:ListEventSourceMappings":
                assert name == "SyncFunction", name  # the breaker's lookup: the action has no resource type
            elif resource == "*":
                assert statement["Action"] == "cloudwatch:PutMetricData", (name, statement)
                namespace = statement["Condition"]["StringEquals"]["cloudwatch:namespace"]
                assert namespace == {"Fn::Sub": "NrtSync/${AWS::StackName}"}
            elif statement["Action"] == "lambda:UpdateEventSourceMapping":
                # Mapping UUIDs are created after the role: narrowed by the function the mapping invokes instead.
                function_arn = statement["Condition"]["ArnEquals"]["lambda:FunctionArn"]
                assert "*" not in json.dumps(function_arn), (name, statement)
            else:
                assert "*" not in json.dumps(resource), (name, statement)
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert all("*" not in action for action in actions), (name, statement)


def test_every_checkov_skip_carries_its_reason(template: Template) -> None:
    for name, spec in template["Resources"].items():
        for skip in spec.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert skip["id"].startswith("CKV"), name
            assert len(skip.get("comment", "")) >= 20, f"{name}: {skip['id']} is skipped without a reason"
