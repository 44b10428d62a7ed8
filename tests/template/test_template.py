"""What cfn-lint and `sam validate --lint` do not check in template.yaml, and the helpers that read it.

Each rule is a function that returns the problems it finds, so every test checks the real template and then
shows, on a mutated copy, that the rule would catch the mistake it is there for.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from nrtsync.domain.basic_auth import basic_challenge
from nrtsync.domain.models.zuora import ZuoraCredentials
from nrtsync.services.backfill.settings import BackfillSettings
from nrtsync.services.ingest.settings import AuthorizerSettings, IngestSettings
from nrtsync.services.metrics.settings import MetricsSettings
from nrtsync.services.reconcile.settings import ReconcileSettings
from nrtsync.services.sync.settings import SyncSettings
from nrtsync_local.template import (
    TemplateError,
    api_authorizer,
    apply_conditions,
    condition_values,
    event_source,
    function_environment,
    function_properties,
    gateway_responses,
    load_template,
    parameter_defaults,
    queue_attributes,
    redrive_target,
    resolve,
    resource_exists,
    table_definition,
    ttl_attribute,
)

Template = dict[str, Any]

SETTINGS: dict[str, type[BaseModel]] = {
    "IngestFunction": IngestSettings,
    "SyncFunction": SyncSettings,
    "MetricsFunction": MetricsSettings,
    "CalloutAuthorizerFunction": AuthorizerSettings,
    "ReconcileFunction": ReconcileSettings,
    "BackfillFunction": BackfillSettings,
}
SERVICE_NAMES = {
    "IngestFunction": "ingest",
    "SyncFunction": "sync",
    "MetricsFunction": "metrics",
    "CalloutAuthorizerFunction": "authorizer",
    "ReconcileFunction": "reconcile",
    "BackfillFunction": "backfill",
}
# Variables read by Powertools or the runtime, not by our settings models.
RUNTIME_VARIABLES = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL", "LOG_LEVEL"}
# Actions that have no resource-level permissions, so AWS requires Resource "*".
WILDCARD_ONLY_ACTIONS = {
    "cloudwatch:PutMetricData",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "lambda:ListEventSourceMappings",  # the breaker finds its mapping's UUID; no resource type, no condition key
}
SQS_WINDOW_REQUIRED_ABOVE = 10
FOURTEEN_DAYS = 14 * 24 * 3600
FOUR_DAYS = 4 * 24 * 3600
STUB_REFS = {
    "AWS::StackName": "nrtsync-test",
    "AWS::Region": "eu-west-1",
    "CalloutQueue": "https://sqs.eu-west-1.amazonaws.com/000000000000/callouts",
    "CalloutQueue.Arn": "arn:aws:sqs:eu-west-1:000000000000:callouts",
    "CalloutSecret": "arn:aws:secretsmanager:eu-west-1:000000000000:secret:callout",
    "SalesforceSecret": "arn:aws:secretsmanager:eu-west-1:000000000000:secret:salesforce",
    "ZuoraSecret": "arn:aws:secretsmanager:eu-west-1:000000000000:secret:zuora",
    "SyncStateTable": "sync-state",
    "SyncHistoryTable": "sync-history",
}


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template()


def mutated(template: Template, change: Callable[[Template], object]) -> Template:
    """A deep copy of the template with one change applied; the original stays as loaded."""
    copied = copy.deepcopy(template)
    change(copied)
    return copied


def resources_of_type(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in template["Resources"].items() if spec["Type"] == resource_type}


def props(template: Template, logical_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return properties


def as_int(value: Any, template: Template) -> int:
    resolved = resolve(value, template)
    assert resolved is not None, f"{value!r} does not resolve from parameter defaults"
    return int(resolved)


# --- Rules ------------------------------------------------------------------------------------------------


def batching_window_problems(template: Template) -> list[str]:
    problems: list[str] = []
    for name in resources_of_type(template, "AWS::Serverless::Function"):
        for event in props(template, name).get("Events", {}).values():
            if event["Type"] != "SQS":
                continue
            properties = event["Properties"]
            if int(properties.get("BatchSize", 10)) <= SQS_WINDOW_REQUIRED_ABOVE:
                continue
            window = properties.get("MaximumBatchingWindowInSeconds")
            if window is None:
                problems.append(f"{name}: BatchSize > 10 without MaximumBatchingWindowInSeconds")
                continue
            if isinstance(window, dict) and "Ref" in window:
                minimum = template["Parameters"][window["Ref"]].get("MinValue")
                if minimum is None or int(minimum) < 1:
                    problems.append(f"{name}: parameter {window['Ref']} allows a batching window below 1 s")
            if as_int(window, template) < 1:
                problems.append(f"{name}: batching window below 1 s with BatchSize > 10")
    return problems


def redrive_problems(template: Template) -> list[str]:
    redrive = props(template, "CalloutQueue").get("RedrivePolicy")
    if redrive is None:
        return ["CalloutQueue has no redrive policy"]
    problems = []
    if redrive.get("deadLetterTargetArn") != {"Fn::GetAtt": ["CalloutDeadLetterQueue", "Arn"]}:
        problems.append("CalloutQueue does not redrive to CalloutDeadLetterQueue")
    if redrive.get("maxReceiveCount") != {"Ref": "MaxReceiveCount"}:
        problems.append("maxReceiveCount is not the MaxReceiveCount parameter")
    return problems


def queue_age_alarm_thresholds(template: Template, queue: str) -> list[int]:
    """Thresholds (seconds) of the alarms on the age of the queue's oldest message."""
    thresholds = []
    for spec in resources_of_type(template, "AWS::CloudWatch::Alarm").values():
        properties = spec["Properties"]
        dimensions = properties.get("Dimensions", [])
        if properties.get("MetricName") == "ApproximateAgeOfOldestMessage" and dimensions == [
            {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}
        ]:
            thresholds.append(as_int(properties["Threshold"], template))
    return thresholds


def retention_problems(template: Template) -> list[str]:
    queue = int(props(template, "CalloutQueue").get("MessageRetentionPeriod", FOUR_DAYS))
    dlq = int(props(template, "CalloutDeadLetterQueue").get("MessageRetentionPeriod", FOUR_DAYS))
    problems = []
    # While the circuit breaker pauses the sync, changes wait on the callout queue: it must keep them the longest.
    if queue != FOURTEEN_DAYS:
        problems.append(f"callout queue keeps messages {queue} s, not 14 days")
    if dlq != FOURTEEN_DAYS:
        problems.append(f"dead-letter queue keeps messages {dlq} s, not 14 days")
    # SQS keeps a message's original enqueue time on redrive: a DLQ shorter-lived than its source expires it.
    if dlq < queue:
        problems.append("dead-letter queue keeps messages less long than the callout queue")
    # Someone must hear of a waiting change long before SQS deletes it.
    thresholds = queue_age_alarm_thresholds(template, "CalloutQueue")
    if not thresholds or min(thresholds) > queue // 4:
        problems.append(f"no alarm on the callout queue's oldest message well before its retention: {thresholds}")
    return problems


def visibility_problems(template: Template) -> list[str]:
    timeout = int(function_properties(template, "SyncFunction")["Timeout"])
    visibility = int(props(template, "CalloutQueue")["VisibilityTimeout"])
    if visibility < 6 * timeout:
        return [f"CalloutQueue VisibilityTimeout {visibility} < 6 x SyncFunction Timeout {timeout}"]
    return []


def partial_batch_problems(template: Template) -> list[str]:
    if "ReportBatchItemFailures" not in event_source(template, "SyncFunction")["FunctionResponseTypes"]:
        return ["SyncFunction's SQS event does not report batch item failures"]
    return []


def queue_encryption_problems(template: Template) -> list[str]:
    return [
        f"{name} is not encrypted"
        for name, spec in resources_of_type(template, "AWS::SQS::Queue").items()
        if spec["Properties"].get("SqsManagedSseEnabled") is not True and "KmsMasterKeyId" not in spec["Properties"]
    ]


def table_problems(template: Template) -> list[str]:
    problems = []
    for name, spec in resources_of_type(template, "AWS::DynamoDB::Table").items():
        properties = spec["Properties"]
        if properties.get("SSESpecification", {}).get("SSEEnabled") is not True:
            problems.append(f"{name}: SSE not enabled")
        if properties.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
            problems.append(f"{name}: point-in-time recovery not enabled")
        if ttl_attribute(template, name) != "expires_at":
            problems.append(f"{name}: TTL is not enabled on expires_at")
        if properties.get("BillingMode") != "PAY_PER_REQUEST":
            problems.append(f"{name}: not on-demand")
    return problems


def runtime_problems(template: Template) -> list[str]:
    problems = []
    for name in resources_of_type(template, "AWS::Serverless::Function"):
        merged = function_properties(template, name)
        if merged.get("Runtime") != "python3.13":
            problems.append(f"{name}: runtime {merged.get('Runtime')}")
        if merged.get("Architectures") != ["arm64"]:
            problems.append(f"{name}: architectures {merged.get('Architectures')}")
        if {"Ref": "SharedLayer"} not in merged.get("Layers", []):
            problems.append(f"{name}: no SharedLayer")
        if merged.get("Tracing") != "Active":
            problems.append(f"{name}: tracing not active")
    layer = template["Resources"]["SharedLayer"]
    if layer["Metadata"].get("BuildMethod") != "python3.13" or layer["Metadata"].get("BuildArchitecture") != "arm64":
        problems.append("SharedLayer is not built for python3.13 on arm64")
    if layer["Properties"].get("CompatibleArchitectures") != ["arm64"]:
        problems.append("SharedLayer is not marked arm64")
    if layer["Properties"].get("CompatibleRuntimes") != ["python3.13"]:
        problems.append("SharedLayer is not marked python3.13")
    return problems


def logging_problems(template: Template) -> list[str]:
    problems = []
    for name in resources_of_type(template, "AWS::Serverless::Function"):
        merged = function_properties(template, name)
        group = merged.get("LoggingConfig", {}).get("LogGroup")
        if not (isinstance(group, dict) and group.get("Ref") in template["Resources"]):
            problems.append(f"{name}: no log group of its own")
            continue
        retention = props(template, group["Ref"]).get("RetentionInDays")
        if retention != {"Ref": "LogRetentionDays"}:
            problems.append(f"{name}: log retention is not LogRetentionDays")
        service = merged["Environment"]["Variables"].get("POWERTOOLS_SERVICE_NAME")
        if service != SERVICE_NAMES.get(name):
            problems.append(f"{name}: POWERTOOLS_SERVICE_NAME is {service}")
    return problems


def ingest_api_problems(template: Template) -> list[str]:
    events = props(template, "IngestFunction").get("Events", {})
    expected = {
        "Type": "Api",
        "Properties": {"RestApiId": {"Ref": "CalloutApi"}, "Path": "/callouts", "Method": "POST"},
    }
    problems = []
    if list(events.values()) != [expected]:
        problems.append(f"IngestFunction's events are {events}, not only POST /callouts on CalloutApi")
    api = props(template, "CalloutApi")
    throttled = [
        setting
        for setting in api.get("MethodSettings", [])
        if setting.get("ResourcePath") == "/*"
        and setting.get("HttpMethod") == "*"
        and setting.get("ThrottlingRateLimit") == {"Ref": "ApiThrottleRateLimit"}
        and setting.get("ThrottlingBurstLimit") == {"Ref": "ApiThrottleBurstLimit"}
    ]
    if not throttled:
        problems.append("CalloutApi is not throttled by the ApiThrottle* parameters")
    if api.get("StageName") != {"Ref": "StageName"}:
        problems.append("CalloutApi's stage is not the StageName parameter")
    log_format = api.get("AccessLogSetting", {}).get("Format", "{}")
    missing = {"requestId", "ip", "status", "responseLength", "integrationLatency"} - set(json.loads(log_format))
    if missing:
        problems.append(f"access log lacks {sorted(missing)}")
    return problems


AUTHORIZER = "CalloutAuthorizerFunction"
# Gateway responses a callout can meet; each must answer JSON with "success": false (Zuora's "Confirm success by
# parsing response content") and an error code, like the ingest function's own error bodies.
REQUIRED_GATEWAY_RESPONSES = {
    "UNAUTHORIZED",
    "ACCESS_DENIED",
    "MISSING_AUTHENTICATION_TOKEN",
    "THROTTLED",
    "AUTHORIZER_FAILURE",
    "AUTHORIZER_CONFIGURATION_ERROR",
    "INTEGRATION_TIMEOUT",
    "DEFAULT_4XX",
    "DEFAULT_5XX",
}


def callout_auth_problems(template: Template) -> list[str]:
    """The Basic challenge must come from API Gateway: a REQUEST authorizer on Authorization, with a cache."""
    problems = []
    try:
        spec = api_authorizer(template, "CalloutApi")
    except TemplateError as exc:
        return [f"CalloutApi's authorizer: {exc}"]
    if spec is None:
        return ["CalloutApi has no default authorizer"]
    if spec["Function"] != AUTHORIZER:
        problems.append(f"CalloutApi's authorizer runs {spec['Function']}, not {AUTHORIZER}")
    if spec["IdentityHeaders"] != ["Authorization"]:
        problems.append(f"the authorizer's identity source is {spec['IdentityHeaders']}, not the Authorization header")
    if spec["ReauthorizeEvery"] <= 0:
        problems.append("the authorizer's results are not cached")
    policies = props(template, AUTHORIZER).get("Policies")
    if policies != [{"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": {"Ref": "CalloutSecret"}}}]:
        problems.append(f"{AUTHORIZER} may do more than read the callout secret: {policies}")
    ingest_realm = props(template, "IngestFunction")["Environment"]["Variables"].get("CALLOUT_AUTH_REALM")
    if ingest_realm != {"Ref": "CalloutAuthRealm"}:
        problems.append(f"IngestFunction's CALLOUT_AUTH_REALM is {ingest_realm}, not the CalloutAuthRealm parameter")
    return problems


def gateway_response_problems(template: Template) -> list[str]:
    responses = gateway_responses(template, "CalloutApi")
    problems = [f"no {name} gateway response" for name in sorted(REQUIRED_GATEWAY_RESPONSES - set(responses))]
    if "REQUEST_TOO_LARGE" in responses:
        problems.append("REQUEST_TOO_LARGE cannot be customized (Amazon API Gateway important notes)")
    for name, spec in responses.items():
        try:
            body = json.loads(spec["Templates"]["application/json"])
        except (KeyError, ValueError):
            problems.append(f"{name} has no JSON application/json body")
            continue
        if body.get("success") is not False or not isinstance(body.get("error"), str):
            problems.append(f'{name}\'s body lacks "success": false and an error code: {body}')
    unauthorized = responses.get("UNAUTHORIZED", {})
    if unauthorized.get("StatusCode") != 401:
        problems.append("UNAUTHORIZED does not answer 401")
    ingest = settings_from_template(template, "IngestFunction")
    realm = ingest.auth_realm if isinstance(ingest, IngestSettings) else ""
    if unauthorized.get("Headers", {}).get("WWW-Authenticate") != basic_challenge(realm):
        problems.append(
            f"UNAUTHORIZED's WWW-Authenticate is not the Basic challenge for the function's realm {realm!r}"
        )
    return problems


def required_aliases(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items() if field.is_required()}


def all_aliases(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def environment_problems(template: Template) -> list[str]:
    problems = []
    global_names = set(template["Globals"]["Function"]["Environment"]["Variables"])
    for name, model in SETTINGS.items():
        own = set(props(template, name).get("Environment", {}).get("Variables", {}))
        missing = required_aliases(model) - own - global_names
        unknown = own - all_aliases(model) - RUNTIME_VARIABLES
        if missing:
            problems.append(f"{name} lacks {sorted(missing)}, required by {model.__name__}")
        if unknown:
            problems.append(f"{name} sets {sorted(unknown)}, which {model.__name__} does not read")
    return problems


def settings_from_template(template: Template, name: str, **overrides: str) -> BaseModel:
    environment = function_environment(template, name, refs=STUB_REFS)
    unresolved = sorted(key for key, value in environment.items() if value is None)
    assert not unresolved, f"{name}: {unresolved} not resolved"
    values = {key: value for key, value in environment.items() if value is not None} | overrides
    return SETTINGS[name].model_validate(values)


def policy_statements(template: Template) -> Iterator[tuple[str, dict[str, Any]]]:
    for name in resources_of_type(template, "AWS::Serverless::Function"):
        for policy in props(template, name).get("Policies", []):
            if isinstance(policy, dict) and "Statement" in policy:
                for statement in policy["Statement"]:
                    yield name, statement
    for name, spec in template["Resources"].items():
        if spec["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            for statement in spec["Properties"]["PolicyDocument"]["Statement"]:
                yield name, statement
        if spec["Type"] == "AWS::IAM::Role":
            for policy in spec["Properties"].get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    yield name, statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def wildcard_problems(template: Template) -> list[str]:
    problems = []
    namespace = template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    for name, statement in policy_statements(template):
        actions = set(as_list(statement["Action"]))
        if any("*" in action for action in actions):
            problems.append(f"{name}: wildcard action in {sorted(actions)}")
        if "*" not in as_list(statement["Resource"]):
            continue
        if not actions <= WILDCARD_ONLY_ACTIONS:
            problems.append(f"{name}: Resource '*' for {sorted(actions - WILDCARD_ONLY_ACTIONS)}")
        if "cloudwatch:PutMetricData" in actions:
            condition = statement.get("Condition", {}).get("StringEquals", {}).get("cloudwatch:namespace")
            if condition != namespace:
                problems.append(f"{name}: PutMetricData not limited to the functions' namespace")
    return problems + policy_template_problems(template)


def policy_template_problems(template: Template) -> list[str]:
    """SAM policy templates (DynamoDBCrudPolicy...) must name a resource of this template, never "*"."""
    problems = []
    for name in resources_of_type(template, "AWS::Serverless::Function"):
        for policy in props(template, name).get("Policies", []):
            if not isinstance(policy, dict) or "Statement" in policy:
                continue
            for policy_name, arguments in policy.items():
                for argument in arguments.values():
                    target = None
                    if isinstance(argument, dict):
                        target = argument.get("Ref") or (argument.get("Fn::GetAtt") or [None])[0]
                    if target not in template["Resources"]:
                        problems.append(f"{name}: {policy_name} is not scoped to a resource of this template")
    return problems


REQUIRED_OUTPUTS = {
    "CalloutUrl",
    "CalloutQueueUrl",
    "CalloutDeadLetterQueueUrl",
    "CalloutSecretArn",
    "SalesforceSecretArn",
    "ZuoraSecretArn",
    "SyncStateTableName",
    "SyncHistoryTableName",
    "IngestFunctionName",
    "SyncFunctionName",
    "MetricsFunctionName",
    "BackfillStateMachineArn",
}


def output_problems(template: Template) -> list[str]:
    missing = REQUIRED_OUTPUTS - set(template.get("Outputs", {}))
    problems = [f"output {name} missing" for name in sorted(missing)]
    url = template.get("Outputs", {}).get("CalloutUrl", {}).get("Value")
    expected = {"Fn::Sub": "https://${CalloutApi}.execute-api.${AWS::Region}.amazonaws.com/${StageName}/callouts"}
    if url != expected:
        problems.append(f"CalloutUrl is {url}")
    return problems


def referenced_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                yield value
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                yield from (part.split("}")[0] for part in str(text).split("${")[1:])
                if isinstance(value, list):
                    yield from referenced_names(value[1])
            else:
                yield from referenced_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from referenced_names(item)


def parameter_problems(template: Template) -> list[str]:
    used = set(referenced_names({k: template.get(k) for k in ("Globals", "Resources", "Outputs", "Conditions")}))
    problems = []
    for name, spec in template["Parameters"].items():
        if not spec.get("Description"):
            problems.append(f"parameter {name} has no Description")
        if name not in used:
            problems.append(f"parameter {name} is not used")
        if "Default" not in spec:
            problems.append(f"parameter {name} has no default")
    return problems


# --- Hygiene: retained data, tags, policy templates, the optional custom domain ------------------------------

# What deleting or replacing would lose for good: newest-wins (the state), the failure list, both credentials.
RETAINED_TYPES = {"AWS::DynamoDB::Table", "AWS::SecretsManager::Secret"}


def retain_problems(template: Template) -> list[str]:
    problems = []
    for name, spec in template["Resources"].items():
        if spec["Type"] not in RETAINED_TYPES:
            continue
        for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
            if spec.get(policy) != "Retain":
                problems.append(f"{name}: {policy} is {spec.get(policy)}, not Retain")
    return problems


STACK_TAGS = {
    "Application": "nrtsync",
    "Environment": {"Ref": "StageName"},
    "Owner": {"Ref": "Owner"},
    "CostCenter": {"Ref": "CostCenter"},
}
# Types whose Tags property is a list of Key/Value pairs.
TAGGED_TYPES = {
    "AWS::Logs::LogGroup",
    "AWS::SQS::Queue",
    "AWS::DynamoDB::Table",
    "AWS::SecretsManager::Secret",
    "AWS::SNS::Topic",
    "AWS::CloudWatch::Alarm",
    "AWS::ApiGateway::DomainName",
    "AWS::KMS::Key",
    "AWS::WAFv2::WebACL",
    "AWS::IAM::Role",
}
# Types CloudFormation cannot tag (no Tags property).
UNTAGGABLE_TYPES = {
    "AWS::CloudWatch::Dashboard",
    "AWS::Serverless::LayerVersion",
    "AWS::ApiGateway::BasePathMapping",
    "AWS::Route53::RecordSet",
    "AWS::KMS::Alias",
    "AWS::SNS::TopicPolicy",
    "AWS::WAFv2::WebACLAssociation",
}


def tag_problems(template: Template) -> list[str]:
    problems = []
    for name, spec in template["Resources"].items():
        kind = spec["Type"]
        if kind == "AWS::Serverless::Function":
            # SAM puts a function's tags on the role and the other resources it generates only with PropagateTags.
            merged = function_properties(template, name)
            if merged.get("Tags") != STACK_TAGS or merged.get("PropagateTags") is not True:
                problems.append(f"{name}: tags {merged.get('Tags')}, PropagateTags {merged.get('PropagateTags')}")
        elif kind in {"AWS::Serverless::Api", "AWS::Serverless::StateMachine"}:
            properties = props(template, name)
            if properties.get("Tags") != STACK_TAGS or properties.get("PropagateTags") is not True:
                problems.append(
                    f"{name}: tags {properties.get('Tags')}, PropagateTags {properties.get('PropagateTags')}"
                )
        elif kind in TAGGED_TYPES:
            tags = {tag["Key"]: tag["Value"] for tag in spec["Properties"].get("Tags", [])}
            if tags != STACK_TAGS:
                problems.append(f"{name}: tags {tags}")
        elif kind not in UNTAGGABLE_TYPES:
            problems.append(f"{name}: {kind} is neither known to take tags nor known not to")
    return problems


def secret_policy_problems(template: Template) -> list[str]:
    """Reading a secret is SAM's AWSSecretsManagerGetSecretValuePolicy, not a hand-written statement; a role of
    our own (no policy templates there) names one secret of the template."""
    problems = []
    for name, statement in policy_statements(template):
        if "secretsmanager:GetSecretValue" not in as_list(statement["Action"]):
            continue
        target = statement["Resource"].get("Ref") if isinstance(statement["Resource"], dict) else None
        is_secret = template["Resources"].get(target, {}).get("Type") == "AWS::SecretsManager::Secret"
        if template["Resources"][name]["Type"] != "AWS::IAM::Role" or not is_secret:
            problems.append(f"{name}: hand-written {statement['Action']} on {statement['Resource']}")
    return problems


DOMAIN_RESOURCES = {
    "CalloutDomain": "HasCalloutDomain",
    "CalloutDomainMapping": "HasCalloutDomain",
    "CalloutDomainRecord": "HasCalloutDomainRecord",
}


def custom_domain_problems(template: Template) -> list[str]:
    problems = []
    for name, condition in DOMAIN_RESOURCES.items():
        spec = template["Resources"].get(name, {})
        if spec.get("Condition") != condition:
            problems.append(f"{name}: condition {spec.get('Condition')}, not {condition}")
    output = template.get("Outputs", {}).get("CalloutDomainUrl", {})
    if output.get("Condition") != "HasCalloutDomain":
        problems.append("no CalloutDomainUrl output on the HasCalloutDomain condition")
    parameters = template["Parameters"]
    for name in ("CalloutDomainName", "CalloutCertificateArn", "HostedZoneId"):
        if parameters.get(name, {}).get("Default") != "":
            problems.append(f"parameter {name} is not optional (empty by default)")
    if "CalloutDomainNeedsCertificate" not in template.get("Rules", {}):
        problems.append("a domain without a certificate is not refused before the deploy")
    return problems


# --- Alarms: missing data, actions ------------------------------------------------------------------------

LATENCY_METRICS = {"EndToEndLatencyP50", "EndToEndLatencyP90", "SyncLatencyP50", "SyncLatencyP90"}
# The breaker alarm breaches on missing data too: without the probe nothing closes the breaker.
BREACHING_WHEN_MISSING = {"BreakerOpenAlarm"}


def alarm_metric_names(properties: dict[str, Any]) -> set[str]:
    names = {properties["MetricName"]} if "MetricName" in properties else set()
    return names | {m["MetricStat"]["Metric"]["MetricName"] for m in properties.get("Metrics", []) if "MetricStat" in m}


def missing_data_problems(template: Template) -> list[str]:
    problems = []
    for name, spec in resources_of_type(template, "AWS::CloudWatch::Alarm").items():
        properties = spec["Properties"]
        latency = bool(alarm_metric_names(properties) & LATENCY_METRICS)
        expected = "breaching" if latency or name in BREACHING_WHEN_MISSING else "notBreaching"
        if properties.get("TreatMissingData") != expected:
            problems.append(f"{name}: TreatMissingData {properties.get('TreatMissingData')}, not {expected}")
        if latency:
            [expression] = [m["Expression"] for m in properties["Metrics"] if m.get("ReturnData")]
            text = resolve(expression, template) or ""
            # A quiet hour has a sample count but no percentile: the result must follow the count, not go missing.
            if not re.fullmatch(r"IF\(samples >= \d+, FILL\(latency, 0\) / 1000, 0\)", text):
                problems.append(f"{name}: a quiet hour would be missing data: {text}")
    return problems


STANDARD_ACTIONS = {
    "Fn::If": [
        "HasAlarmTarget",
        [
            {"Fn::If": ["HasAlarmEmail", {"Ref": "AlarmTopic"}, {"Ref": "AWS::NoValue"}]},
            {"Fn::If": ["HasAlarmTopicArn", {"Ref": "AlarmTopicArn"}, {"Ref": "AWS::NoValue"}]},
        ],
        {"Ref": "AWS::NoValue"},
    ]
}


def alarm_action_problems(template: Template) -> list[str]:
    problems = []
    for name, spec in resources_of_type(template, "AWS::CloudWatch::Alarm").items():
        for key in ("AlarmActions", "OKActions"):
            if spec["Properties"].get(key) != STANDARD_ACTIONS:
                problems.append(f"{name}: {key} do not notify the e-mail topic and AlarmTopicArn")
    if template["Resources"].get("AlarmTopic", {}).get("Condition") != "HasAlarmEmail":
        problems.append("AlarmTopic is not created exactly when AlarmEmail is set")
    return problems


# --- The template follows the rules -----------------------------------------------------------------------


def breaker_problems(template: Template) -> list[str]:
    """The breaker may update only the sync function's own event source mappings: UpdateEventSourceMapping on
    mapping ARNs with a lambda:FunctionArn condition naming the sync function by its fixed name (no reference to
    the function or its mapping: that would be circular); the probe is a Schedule event of at most once a minute."""
    problems = []
    sync = props(template, "SyncFunction")
    name = sync.get("FunctionName", {})
    if name != {"Fn::Sub": "${AWS::StackName}-sync"}:
        problems.append(f"SyncFunction's FunctionName is {name!r}, not the fixed ${{AWS::StackName}}-sync")
    function_arn = {
        "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-sync"
    }
    updates = [
        (owner, statement)
        for owner, statement in policy_statements(template)
        if any(
            action.startswith("lambda:") and "EventSourceMapping" in action for action in as_list(statement["Action"])
        )
        and "lambda:ListEventSourceMappings" not in as_list(statement["Action"])
    ]
    role = sync.get("Role", {}).get("Fn::GetAtt", ["SyncFunction"])[0]
    if [owner for owner, _ in updates] != [role]:
        problems.append(f"event source mapping changes granted to {[owner for owner, _ in updates]}")
    for _, statement in updates:
        if as_list(statement["Action"]) != ["lambda:UpdateEventSourceMapping"]:
            problems.append(f"breaker grants {statement['Action']}")
        resource = statement["Resource"]
        if resource != {
            "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:event-source-mapping:*"
        }:
            problems.append(f"UpdateEventSourceMapping on {resource!r}")
        if statement.get("Condition", {}).get("ArnEquals", {}).get("lambda:FunctionArn") != function_arn:
            problems.append("UpdateEventSourceMapping without a lambda:FunctionArn condition naming the sync function")
    schedules = [e for e in sync.get("Events", {}).values() if e.get("Type") == "Schedule"]
    if [e["Properties"]["Schedule"] for e in schedules] != ["rate(1 minute)"]:
        problems.append("the breaker's probe is not a Schedule event of rate(1 minute) on SyncFunction")
    variables = sync["Environment"]["Variables"]
    if variables.get("BREAKER_FAILURE_THRESHOLD") != {"Ref": "BreakerFailureThreshold"}:
        problems.append("BREAKER_FAILURE_THRESHOLD is not the BreakerFailureThreshold parameter")
    if variables.get("CALLOUT_QUEUE_ARN") != {"Fn::GetAtt": ["CalloutQueue", "Arn"]}:
        problems.append("CALLOUT_QUEUE_ARN is not the callout queue's ARN")
    return problems


RULES: dict[str, Callable[[Template], list[str]]] = {
    "batching_window": batching_window_problems,
    "redrive": redrive_problems,
    "retention": retention_problems,
    "visibility": visibility_problems,
    "partial_batch": partial_batch_problems,
    "queue_encryption": queue_encryption_problems,
    "tables": table_problems,
    "runtime": runtime_problems,
    "logging": logging_problems,
    "ingest_api": ingest_api_problems,
    "environment": environment_problems,
    "wildcards": wildcard_problems,
    "outputs": output_problems,
    "parameters": parameter_problems,
    "callout_auth": callout_auth_problems,
    "gateway_responses": gateway_response_problems,
    "retain": retain_problems,
    "tags": tag_problems,
    "secret_policy": secret_policy_problems,
    "custom_domain": custom_domain_problems,
    "missing_data": missing_data_problems,
    "alarm_actions": alarm_action_problems,
    "breaker": breaker_problems,
}


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_template_follows_rule(template: Template, rule: Callable[[Template], list[str]]) -> None:
    assert rule(template) == []


def _sqs_event(t: Template) -> dict[str, Any]:
    event: dict[str, Any] = props(t, "SyncFunction")["Events"]["Callouts"]["Properties"]
    return event


def _authorizer(t: Template) -> dict[str, Any]:
    authorizer: dict[str, Any] = props(t, "CalloutApi")["Auth"]["Authorizers"]["CalloutBasicAuthorizer"]
    return authorizer


def _gateway(t: Template) -> dict[str, Any]:
    responses: dict[str, Any] = props(t, "CalloutApi")["GatewayResponses"]
    return responses


def _statements(t: Template, function: str) -> list[dict[str, Any]]:
    return next(p["Statement"] for p in props(t, function)["Policies"] if isinstance(p, dict) and "Statement" in p)


def _role_statements(t: Template, role: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = props(t, role)["Policies"][0]["PolicyDocument"]["Statement"]
    return statements


def _statement_for(t: Template, function: str, action: str) -> dict[str, Any]:
    return next(st for st in _statements(t, function) if action in as_list(st["Action"]))


# Each mistake the rules are there for, applied to a copy: the rule must report it.
def _breaker_statement(template: Template) -> dict[str, Any]:
    return next(
        statement
        for owner, statement in policy_statements(template)
        if owner == "SyncFunctionRole" and "lambda:UpdateEventSourceMapping" in as_list(statement["Action"])
    )


MISTAKES: dict[str, tuple[Callable[[Template], list[str]], Callable[[Template], object]]] = {
    "window_parameter_allows_zero": (
        batching_window_problems,
        lambda t: t["Parameters"]["BatchingWindowSeconds"].update(MinValue=0),
    ),
    "window_missing": (batching_window_problems, lambda t: _sqs_event(t).pop("MaximumBatchingWindowInSeconds")),
    "window_literal_zero": (batching_window_problems, lambda t: _sqs_event(t).update(MaximumBatchingWindowInSeconds=0)),
    "redrive_missing": (redrive_problems, lambda t: props(t, "CalloutQueue").pop("RedrivePolicy")),
    "redrive_count_literal": (
        redrive_problems,
        lambda t: props(t, "CalloutQueue")["RedrivePolicy"].update(maxReceiveCount=5),
    ),
    "dlq_retention_short": (
        retention_problems,
        lambda t: props(t, "CalloutDeadLetterQueue").pop("MessageRetentionPeriod"),
    ),
    "queue_keeps_4_days": (
        retention_problems,
        lambda t: props(t, "CalloutQueue").update(MessageRetentionPeriod=FOUR_DAYS),
    ),
    "dlq_shorter_than_queue": (
        retention_problems,
        lambda t: props(t, "CalloutDeadLetterQueue").update(MessageRetentionPeriod=FOUR_DAYS),
    ),
    "no_queue_age_alarm": (
        retention_problems,
        lambda t: [t["Resources"].pop(a) for a in ("CalloutQueueAgeAlarm", "CalloutQueueRetentionAlarm")],
    ),
    "queue_age_alarm_near_retention": (
        retention_problems,
        lambda t: [
            props(t, a).update(Threshold=FOURTEEN_DAYS - 3600)
            for a in ("CalloutQueueAgeAlarm", "CalloutQueueRetentionAlarm")
        ],
    ),
    "state_table_deleted_with_stack": (
        retain_problems,
        lambda t: t["Resources"]["SyncStateTable"].pop("DeletionPolicy"),
    ),
    "secret_replaced_and_deleted": (
        retain_problems,
        lambda t: t["Resources"]["CalloutSecret"].update(UpdateReplacePolicy="Delete"),
    ),
    "queue_untagged": (tag_problems, lambda t: props(t, "CalloutQueue").pop("Tags")),
    "alarm_missing_owner_tag": (tag_problems, lambda t: props(t, "BreakerOpenAlarm")["Tags"].pop(2)),
    "function_tags_not_propagated": (tag_problems, lambda t: t["Globals"]["Function"].pop("PropagateTags")),
    "api_untagged": (tag_problems, lambda t: props(t, "CalloutApi").pop("Tags")),
    "unknown_resource_type": (
        tag_problems,
        lambda t: t["Resources"].update(Bucket={"Type": "AWS::S3::Bucket", "Properties": {}}),
    ),
    "ingest_secret_hand_written": (
        secret_policy_problems,
        lambda t: props(t, "IngestFunction")["Policies"].append(
            {
                "Statement": [
                    {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": {"Ref": "CalloutSecret"}}
                ]
            }
        ),
    ),
    "domain_always_created": (custom_domain_problems, lambda t: t["Resources"]["CalloutDomain"].pop("Condition")),
    "domain_without_certificate_rule": (custom_domain_problems, lambda t: t.pop("Rules")),
    "latency_alarm_quiet_when_metrics_dead": (
        missing_data_problems,
        lambda t: props(t, "EndToEndLatencyP90Alarm").update(TreatMissingData="notBreaching"),
    ),
    "latency_alarm_missing_on_quiet_hour": (
        missing_data_problems,
        lambda t: props(t, "EndToEndLatencyP50Alarm")["Metrics"][2].update(
            Expression={"Fn::Sub": "IF(samples >= ${LatencyAlarmMinSamples}, latency / 1000, 0)"}
        ),
    ),
    "dlq_alarm_breaching_on_idle": (
        missing_data_problems,
        lambda t: props(t, "DeadLetterQueueAlarm").update(TreatMissingData="breaching"),
    ),
    "alarm_only_to_email": (
        alarm_action_problems,
        lambda t: props(t, "CalloutsRejectedAlarm").update(
            AlarmActions={"Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]}
        ),
    ),
    "alarm_without_ok_actions": (alarm_action_problems, lambda t: props(t, "BreakerOpenAlarm").pop("OKActions")),
    "sync_timeout_raised": (visibility_problems, lambda t: props(t, "SyncFunction").update(Timeout=120)),
    "no_partial_batch": (partial_batch_problems, lambda t: _sqs_event(t).update(FunctionResponseTypes=[])),
    "dlq_unencrypted": (
        queue_encryption_problems,
        lambda t: props(t, "CalloutDeadLetterQueue").pop("SqsManagedSseEnabled"),
    ),
    "table_without_ttl": (table_problems, lambda t: props(t, "SyncHistoryTable").pop("TimeToLiveSpecification")),
    "table_unencrypted": (table_problems, lambda t: props(t, "SyncStateTable").pop("SSESpecification")),
    "function_on_x86": (runtime_problems, lambda t: props(t, "MetricsFunction").update(Architectures=["x86_64"])),
    "function_old_runtime": (runtime_problems, lambda t: props(t, "SyncFunction").update(Runtime="python3.12")),
    "layer_without_build_arch": (runtime_problems, lambda t: t["Resources"]["SharedLayer"]["Metadata"].clear()),
    "no_log_group": (logging_problems, lambda t: props(t, "IngestFunction").pop("LoggingConfig")),
    "ingest_extra_event": (
        ingest_api_problems,
        lambda t: props(t, "IngestFunction")["Events"].update(
            Get={
                "Type": "Api",
                "Properties": {"RestApiId": {"Ref": "CalloutApi"}, "Path": "/callouts", "Method": "GET"},
            }
        ),
    ),
    "api_unthrottled": (ingest_api_problems, lambda t: props(t, "CalloutApi").pop("MethodSettings")),
    "sync_env_missing_table": (
        environment_problems,
        lambda t: props(t, "SyncFunction")["Environment"]["Variables"].pop("SYNC_STATE_TABLE"),
    ),
    "ingest_env_typo": (
        environment_problems,
        lambda t: props(t, "IngestFunction")["Environment"]["Variables"].update(MAX_CALLOUT_BYTE="1"),
    ),
    "namespace_only_global": (
        environment_problems,
        lambda t: t["Globals"]["Function"]["Environment"]["Variables"].pop("POWERTOOLS_METRICS_NAMESPACE"),
    ),
    "sqs_on_any_resource": (
        wildcard_problems,
        lambda t: _role_statements(t, "SyncFunctionRole")[1].update(Resource="*"),
    ),
    "metrics_any_namespace": (
        wildcard_problems,
        lambda t: _statement_for(t, "MetricsFunction", "cloudwatch:PutMetricData").pop("Condition"),
    ),
    "policy_template_on_any_queue": (
        wildcard_problems,
        lambda t: props(t, "IngestFunction")["Policies"][0].update(SQSSendMessagePolicy={"QueueName": "*"}),
    ),
    "table_actions_on_any_table": (
        wildcard_problems,
        lambda t: _statement_for(t, "ReconcileFunction", "dynamodb:GetItem").update(Resource="*"),
    ),
    "output_missing": (output_problems, lambda t: t["Outputs"].pop("SyncHistoryTableName")),
    "parameter_unused": (parameter_problems, lambda t: _sqs_event(t).update(MaximumBatchingWindowInSeconds=2)),
    "no_authorizer": (callout_auth_problems, lambda t: props(t, "CalloutApi").pop("Auth")),
    "authorizer_uncached": (
        callout_auth_problems,
        lambda t: _authorizer(t)["Identity"].update(ReauthorizeEvery=0),
    ),
    "authorizer_on_other_header": (
        callout_auth_problems,
        lambda t: _authorizer(t)["Identity"].update(Headers=["X-Zuora-Signature"]),
    ),
    "authorizer_reads_any_secret": (
        callout_auth_problems,
        lambda t: props(t, AUTHORIZER)["Policies"][0]["AWSSecretsManagerGetSecretValuePolicy"].update(
            SecretArn={"Ref": "SalesforceSecret"}
        ),
    ),
    "realm_literal_in_function": (
        callout_auth_problems,
        lambda t: props(t, "IngestFunction")["Environment"]["Variables"].update(CALLOUT_AUTH_REALM="other"),
    ),
    "no_challenge_header": (
        gateway_response_problems,
        lambda t: _gateway(t)["UNAUTHORIZED"].pop("ResponseParameters"),
    ),
    "challenge_realm_differs": (
        gateway_response_problems,
        lambda t: props(t, "IngestFunction")["Environment"]["Variables"].update(CALLOUT_AUTH_REALM="other"),
    ),
    "unauthorized_as_403": (gateway_response_problems, lambda t: _gateway(t)["UNAUTHORIZED"].update(StatusCode="403")),
    "body_without_success": (
        gateway_response_problems,
        lambda t: _gateway(t)["DEFAULT_5XX"]["ResponseTemplates"].update({"application/json": '{"error": "x"}'}),
    ),
    "timeout_uncustomized": (gateway_response_problems, lambda t: _gateway(t).pop("INTEGRATION_TIMEOUT")),
    "breaker_on_any_function": (
        breaker_problems,
        lambda t: _breaker_statement(t).pop("Condition"),
    ),
    "breaker_on_any_mapping_action": (
        breaker_problems,
        lambda t: _breaker_statement(t).update(
            Action=["lambda:UpdateEventSourceMapping", "lambda:DeleteEventSourceMapping"]
        ),
    ),
    "breaker_without_a_fixed_name": (breaker_problems, lambda t: props(t, "SyncFunction").pop("FunctionName")),
    "breaker_probe_unscheduled": (breaker_problems, lambda t: props(t, "SyncFunction")["Events"].pop("BreakerProbe")),
    "request_too_large_customized": (
        gateway_response_problems,
        lambda t: _gateway(t).update(
            REQUEST_TOO_LARGE={"ResponseTemplates": {"application/json": '{"success": false, "error": "x"}'}}
        ),
    ),
}


@pytest.mark.parametrize(("rule", "mistake"), MISTAKES.values(), ids=MISTAKES.keys())
def test_rule_catches_mistake(
    template: Template, rule: Callable[[Template], list[str]], mistake: Callable[[Template], object]
) -> None:
    # Given the template with one mistake
    broken = mutated(template, mistake)
    # When / Then the rule reports it, and the loaded template is untouched
    assert rule(broken) != []
    assert rule(template) == []


def test_namespace_mistake_is_caught_by_the_wildcard_rule_too(template: Template) -> None:
    broken = mutated(
        template,
        lambda t: t["Globals"]["Function"]["Environment"]["Variables"].update(POWERTOOLS_METRICS_NAMESPACE="Other"),
    )
    assert any("namespace" in problem for problem in wildcard_problems(broken))


# --- Template values satisfy the code's settings models ---------------------------------------------------


@pytest.mark.parametrize("name", SETTINGS)
def test_parameter_defaults_give_valid_settings(template: Template, name: str) -> None:
    settings_from_template(template, name)


def _parameter_bounds(template: Template) -> Iterator[tuple[str, str, str]]:
    for function in SETTINGS:
        for variable, value in props(template, function)["Environment"]["Variables"].items():
            if not (isinstance(value, dict) and value.get("Ref") in template["Parameters"]):
                continue
            spec = template["Parameters"][value["Ref"]]
            for bound in ("MinValue", "MaxValue"):
                if bound in spec:
                    yield function, variable, str(spec[bound])
            for allowed in spec.get("AllowedValues", []):
                yield function, variable, str(allowed)


def test_every_parameter_value_the_template_allows_is_valid_for_the_code(template: Template) -> None:
    # Given every bound of every parameter that feeds a setting
    bounds = list(_parameter_bounds(template))
    assert bounds
    # When / Then the function's settings model accepts it
    for function, variable, value in bounds:
        try:
            settings_from_template(template, function, **{variable: value})
        except ValidationError as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{function}: {variable}={value} is allowed by the template but rejected: {exc}")


def test_parameter_bound_the_code_rejects_is_caught(template: Template) -> None:
    broken = mutated(template, lambda t: t["Parameters"]["MaxCalloutBytes"].update(MinValue=1))
    rejected = []
    for function, variable, value in _parameter_bounds(broken):
        try:
            settings_from_template(broken, function, **{variable: value})
        except ValidationError:
            rejected.append((function, variable, value))
    assert rejected == [("IngestFunction", "MAX_CALLOUT_BYTES", "1")]


@pytest.mark.parametrize("realm", ["nrtsync", "a", "Zuora callouts 1.0_prod-eu", "x" * 64])
def test_every_realm_the_template_allows_is_valid_for_the_code(template: Template, realm: str) -> None:
    pattern = template["Parameters"]["CalloutAuthRealm"]["AllowedPattern"]
    assert re.fullmatch(pattern, realm)
    assert settings_from_template(template, "IngestFunction", CALLOUT_AUTH_REALM=realm)


@pytest.mark.parametrize("realm", ['a"b', "a'b", "a\\b", "", "x" * 65])
def test_a_realm_that_would_break_the_quoted_header_is_refused_by_the_template(template: Template, realm: str) -> None:
    assert not re.fullmatch(template["Parameters"]["CalloutAuthRealm"]["AllowedPattern"], realm)


def test_metrics_wait_for_the_slowest_sync_invocation(template: Template) -> None:
    # A minute's latencies are published once the last sync that could still write to it has timed out.
    sync_timeout = int(function_properties(template, "SyncFunction")["Timeout"])
    field = MetricsSettings.model_fields["distribution_settle_seconds"]
    lowest = min(int(getattr(rule, "ge", 0)) for rule in field.metadata if hasattr(rule, "ge"))
    assert lowest > sync_timeout


def test_environment_mistakes_fail_the_settings_model(template: Template) -> None:
    broken = mutated(template, lambda t: t["Parameters"]["ApiUsageWarnPercent"].update(Default=150))
    with pytest.raises(ValidationError):
        settings_from_template(broken, "SyncFunction")


# --- Settings a deployer chooses are parameters ------------------------------------------------------------

# The settings the docs call the stack's: each is a parameter, and every function whose settings model reads
# the variable gets it from that parameter (CALLOUT_AUTH_REALM is the authorizer's, tested with it).
SETTING_PARAMETERS = {
    "CalloutHmacHeader": "CALLOUT_HMAC_HEADER",
    "SecretCacheSeconds": "SECRET_CACHE_SECONDS",
    "SyncMappingPath": "SYNC_MAPPING_PATH",
    "AllowedSourceCidrs": "ALLOWED_SOURCE_CIDRS",
    "MaxCalloutBytes": "MAX_CALLOUT_BYTES",
    "MaxClockSkewSeconds": "MAX_CLOCK_SKEW_SECONDS",
    "HistoryTtlDays": "HISTORY_TTL_DAYS",
    "BackfillMaxQueueBacklog": "BACKFILL_MAX_QUEUE_BACKLOG",
    "BackfillMaxApiUsagePercent": "BACKFILL_MAX_API_USAGE_PERCENT",
    "BackfillWaitSeconds": "BACKFILL_WAIT_SECONDS",
    "ReconcileDeletesHour": "RECONCILE_DELETES_HOUR",
}


def setting_parameter_problems(template: Template) -> list[str]:
    problems = []
    for parameter, variable in SETTING_PARAMETERS.items():
        if parameter not in template["Parameters"]:
            problems.append(f"parameter {parameter} missing")
            continue
        readers = [name for name, model in SETTINGS.items() if variable in all_aliases(model)]
        if not readers:
            problems.append(f"no settings model reads {variable}")
        for name in readers:
            value = props(template, name).get("Environment", {}).get("Variables", {}).get(variable)
            if value != {"Ref": parameter}:
                problems.append(f"{name}: {variable} is {value!r}, not the {parameter} parameter")
    return problems


def test_every_function_that_reads_a_setting_gets_it_from_its_parameter(template: Template) -> None:
    assert setting_parameter_problems(template) == []


@pytest.mark.parametrize(
    ("function", "variable"), [("IngestFunction", "SECRET_CACHE_SECONDS"), ("SyncFunction", "SYNC_MAPPING_PATH")]
)
def test_a_function_left_without_the_parameter_is_caught(template: Template, function: str, variable: str) -> None:
    broken = mutated(template, lambda t: props(t, function)["Environment"]["Variables"].pop(variable))
    assert setting_parameter_problems(broken) == [
        f"{function}: {variable} is None, not the {next(p for p, v in SETTING_PARAMETERS.items() if v == variable)}"
        " parameter"
    ]


@pytest.mark.parametrize(
    "parameter", ["CalloutHmacHeader", "SecretCacheSeconds", "SyncMappingPath", "ReconcileDeletesHour"]
)
def test_new_parameters_default_to_what_the_code_did_without_them(template: Template, parameter: str) -> None:
    # Given the default a deployment got before the setting was a parameter (the settings model's own)
    variable = SETTING_PARAMETERS[parameter]
    defaults = {
        model.model_fields[name].default
        for model in SETTINGS.values()
        for name, field in model.model_fields.items()
        if field.alias == variable
    }
    assert len(defaults) == 1
    code_default = defaults.pop()
    # Then the parameter's default means the same (an empty string is dropped by from_env, i.e. None)
    parameter_default = parameter_defaults(template)[parameter]
    assert (parameter_default or None) == (None if code_default is None else str(code_default))


def _allowed(template: Template, parameter: str, value: str) -> bool:
    return re.fullmatch(template["Parameters"][parameter]["AllowedPattern"], value) is not None


def test_hmac_header_parameter_takes_only_a_header_name(template: Template) -> None:
    assert _allowed(template, "CalloutHmacHeader", "X-Zuora-Signature")
    assert _allowed(template, "CalloutHmacHeader", "x-signature_v2")
    for bad in ("", "X Zuora Signature", "X-Signature:", "X-Sig\n"):
        assert not _allowed(template, "CalloutHmacHeader", bad), bad


def test_mapping_path_parameter_takes_empty_or_an_absolute_json_path(template: Template) -> None:
    assert _allowed(template, "SyncMappingPath", "")
    assert _allowed(template, "SyncMappingPath", "/opt/python/nrtsync/config/acme_mapping.json")
    for bad in ("acme_mapping.json", "/opt/python/acme mapping.json", "/opt/python/mapping.yaml"):
        assert not _allowed(template, "SyncMappingPath", bad), bad


def test_every_hmac_header_the_template_allows_is_valid_for_the_code(template: Template) -> None:
    # MinValue/MaxValue are checked for every parameter above; a pattern has no bounds to try, so try examples.
    for header in ("X-Zuora-Signature", "Signature", "x-hub-signature-256"):
        assert _allowed(template, "CalloutHmacHeader", header)
        settings_from_template(template, "IngestFunction", CALLOUT_HMAC_HEADER=header)


def test_the_sync_function_may_not_send_to_the_queue(template: Template) -> None:
    # The sync function delays a waiting record with ChangeMessageVisibility(Batch); it never sends a message
    # (operators re-queue failures with their own credentials), so it must not be allowed to.
    actions = {
        action
        for name, statement in policy_statements(template)
        if name == "SyncFunctionRole"
        for action in as_list(statement["Action"])
    }
    sam_policies = {
        key for p in props(template, "SyncFunction").get("Policies", []) if isinstance(p, dict) for key in p
    }
    assert "sqs:ChangeMessageVisibility" in actions
    assert not {action for action in actions if action.lower() in {"sqs:sendmessage", "sqs:*"}}
    assert "SQSSendMessagePolicy" not in sam_policies
    assert "SQSPollerPolicy" not in sam_policies


def test_sync_state_never_expires_although_its_table_has_ttl_on(template: Template) -> None:
    # HistoryTtlDays' description (and docs/DEPLOY.md) promise that the state outlives the history: a record's
    # last written version must not expire, or a re-delivered old change would be written over a newer one.
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    from nrtsync.adapters.aws.state import DynamoVersionStore  # noqa: PLC0415 - after moto
    from nrtsync.ports.salesforce import ApiUsage  # noqa: PLC0415

    assert "never expire" in template["Parameters"]["HistoryTtlDays"]["Description"]
    with moto.mock_aws():
        # Given the state table as the template defines it (TTL on expires_at)
        dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
        dynamodb.create_table(TableName="state", **table_definition(template, "SyncStateTable"))
        store = DynamoVersionStore("state", client=dynamodb)
        # When a record is leased and written, another leased and released, and the API usage saved
        store.claim("Account#A1", "1", "h1", owner="s1", lease_until_ms=2**50)
        store.commit("Account#A1", "1", "h1", owner="s1", salesforce_id="001")
        store.claim("Account#A2", "1", "h2", owner="s1", lease_until_ms=2**50)
        store.release("Account#A2", owner="s1")
        store.save_api_usage(ApiUsage(used=1, limit=10, observed_at=datetime.now(UTC)))
        # Then no item carries the TTL attribute
        items = dynamodb.scan(TableName="state")["Items"]
    assert len(items) == 3
    assert [item["pk"]["S"] for item in items if ttl_attribute(template, "SyncStateTable") in item] == []


def test_metrics_runs_end_before_the_next_scheduled_run_and_reserve_no_concurrency(template: Template) -> None:
    # docs/METRICS.md: overlapping runs are safe but should not be the norm; reserved concurrency is left
    # off on purpose (it fails to deploy in accounts at their minimum unreserved concurrency).
    metrics = function_properties(template, "MetricsFunction")
    assert parameter_defaults(template)["MetricsSchedule"] == "rate(1 minute)"
    assert int(metrics["Timeout"]) < 60
    assert "ReservedConcurrentExecutions" not in metrics


# --- nrtsync_local.template helpers ----------------------------------------------------------------------


def test_load_template_turns_short_tags_into_long_form(template: Template) -> None:
    assert props(template, "IngestFunction")["Environment"]["Variables"]["CALLOUT_QUEUE_URL"] == {"Ref": "CalloutQueue"}
    assert props(template, "CalloutQueue")["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["CalloutDeadLetterQueue", "Arn"]
    }
    assert template["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}


def test_parameter_defaults_are_strings(template: Template) -> None:
    defaults = parameter_defaults(template)
    assert defaults["BatchingWindowSeconds"] == "2"
    assert defaults["SalesforceApiVersion"] == "62.0"
    assert defaults["AlarmEmail"] == ""
    assert defaults["StageName"] == "prod"


def test_queue_attributes_of_the_callout_queue(template: Template) -> None:
    attributes = queue_attributes(template, "CalloutQueue", dlq_arn="arn:aws:sqs:eu-west-1:000000000000:dlq")
    assert attributes["VisibilityTimeout"] == "360"
    assert attributes["MessageRetentionPeriod"] == str(FOURTEEN_DAYS)
    assert attributes["SqsManagedSseEnabled"] == "true"
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": "arn:aws:sqs:eu-west-1:000000000000:dlq",
        "maxReceiveCount": 10,
    }
    assert redrive_target(template, "CalloutQueue") == "CalloutDeadLetterQueue"


def test_queue_attributes_follow_the_template(template: Template) -> None:
    changed = mutated(template, lambda t: t["Parameters"]["MaxReceiveCount"].update(Default=3))
    attributes = queue_attributes(changed, "CalloutQueue", dlq_arn="arn:dlq")
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 3


def test_queue_attributes_refuse_a_redrive_without_its_queue(template: Template) -> None:
    with pytest.raises(TemplateError, match="dlq_arn"):
        queue_attributes(template, "CalloutQueue")
    assert queue_attributes(template, "CalloutDeadLetterQueue")["MessageRetentionPeriod"] == str(FOURTEEN_DAYS)
    assert redrive_target(template, "CalloutDeadLetterQueue") is None


def test_table_definitions(template: Template) -> None:
    assert table_definition(template, "SyncStateTable") == {
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    history = table_definition(template, "SyncHistoryTable")
    assert history["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert ttl_attribute(template, "SyncHistoryTable") == "expires_at"


def test_helpers_reject_the_wrong_resource(template: Template) -> None:
    with pytest.raises(TemplateError):
        table_definition(template, "CalloutQueue")
    with pytest.raises(TemplateError):
        queue_attributes(template, "NoSuchQueue")


def test_function_environment_resolves_what_it_can(template: Template) -> None:
    # Without names for deployed resources those stay None; parameters and literals resolve
    unresolved = function_environment(template, "SyncFunction")
    assert unresolved["CALLOUT_QUEUE_URL"] is None
    assert unresolved["POWERTOOLS_METRICS_NAMESPACE"] is None
    assert unresolved["SALESFORCE_API_VERSION"] == "62.0"
    assert unresolved["PARENT_WAIT_MAX_TRIES"] == "8"
    assert unresolved["POWERTOOLS_SERVICE_NAME"] == "sync"
    # With names everything resolves
    resolved = function_environment(template, "SyncFunction", refs=STUB_REFS)
    assert resolved["CALLOUT_QUEUE_URL"] == STUB_REFS["CalloutQueue"]
    assert resolved["POWERTOOLS_METRICS_NAMESPACE"] == "NrtSync/nrtsync-test"
    assert None not in resolved.values()


def test_event_source_of_the_sync_function(template: Template) -> None:
    assert event_source(template, "SyncFunction") == {
        "Queue": "CalloutQueue",
        "BatchSize": 200,
        "MaximumBatchingWindowInSeconds": 2,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "MaximumConcurrency": 5,
    }
    with pytest.raises(TemplateError):
        event_source(template, "IngestFunction")


def test_resolve_sub_with_variables(template: Template) -> None:
    value = {"Fn::Sub": ["${Name}-${AWS::StackName}-${!Literal}", {"Name": {"Ref": "StageName"}}]}
    assert resolve(value, template, refs={"AWS::StackName": "s"}) == "prod-s-${Literal}"
    assert resolve(value, template) is None


def test_moto_accepts_resources_built_from_the_template(template: Template) -> None:
    # Given moto in-process (no network)
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    with moto.mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-1")
        dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
        # When the queues and tables are created from the template's properties
        dlq_url = sqs.create_queue(QueueName="dlq", Attributes=queue_attributes(template, "CalloutDeadLetterQueue"))[
            "QueueUrl"
        ]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        queue_url = sqs.create_queue(
            QueueName="callouts", Attributes=queue_attributes(template, "CalloutQueue", dlq_arn=dlq_arn)
        )["QueueUrl"]
        for name in ("SyncStateTable", "SyncHistoryTable"):
            dynamodb.create_table(TableName=name, **table_definition(template, name))
        # Then they carry the template's settings
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        assert attributes["VisibilityTimeout"] == "360"
        assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"] == dlq_arn
        described = dynamodb.describe_table(TableName="SyncHistoryTable")["Table"]
        assert [key["AttributeName"] for key in described["KeySchema"]] == ["pk", "sk"]


# --- Alarm targets and the custom domain under each choice of parameters -----------------------------------

TOPIC = "arn:aws:sns:eu-west-1:123456789012:on-call"
ALARM_TARGETS = {
    "none": ({}, []),
    "email": ({"AlarmEmail": "ops@example.com"}, [{"Ref": "AlarmTopic"}]),
    "topic": ({"AlarmTopicArn": TOPIC}, [{"Ref": "AlarmTopicArn"}]),
    "both": (
        {"AlarmEmail": "ops@example.com", "AlarmTopicArn": TOPIC},
        [{"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}],
    ),
}


@pytest.mark.parametrize("choice", ALARM_TARGETS)
def test_every_alarm_notifies_the_targets_given_and_only_those(template: Template, choice: str) -> None:
    # Given a choice of AlarmEmail and AlarmTopicArn
    parameters, expected = ALARM_TARGETS[choice]
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 12

    # When CloudFormation applies the conditions
    for name, spec in alarms.items():
        applied = apply_conditions(spec["Properties"], template, refs=parameters)
        # Then each alarm notifies exactly the chosen targets, in ALARM and back to OK (no empty list)
        assert applied.get("AlarmActions", []) == expected, name
        assert applied.get("OKActions", []) == expected, name
    assert resource_exists(template, "AlarmTopic", refs=parameters) == ("AlarmEmail" in parameters)


def test_the_topic_parameter_takes_an_sns_arn_and_nothing_else(template: Template) -> None:
    pattern = template["Parameters"]["AlarmTopicArn"]["AllowedPattern"]
    assert re.fullmatch(pattern, TOPIC)
    assert re.fullmatch(pattern, "")
    for wrong in ("on-call", "arn:aws:sqs:eu-west-1:123456789012:q", "arn:aws:sns:eu-west-1:1234:t"):
        assert not re.fullmatch(pattern, wrong), wrong


DOMAIN = {"CalloutDomainName": "callouts.example.com", "CalloutCertificateArn": "arn:aws:acm:eu-west-1:1:certificate/x"}


@pytest.mark.parametrize(
    ("parameters", "created"),
    [
        ({}, set()),
        (DOMAIN, {"CalloutDomain", "CalloutDomainMapping"}),
        (DOMAIN | {"HostedZoneId": "Z0123456789ABC"}, {"CalloutDomain", "CalloutDomainMapping", "CalloutDomainRecord"}),
    ],
    ids=["no domain", "domain", "domain and zone"],
)
def test_the_custom_domain_exists_only_when_asked_for(
    template: Template, parameters: dict[str, str], created: set[str]
) -> None:
    exists = {name for name in DOMAIN_RESOURCES if resource_exists(template, name, refs=parameters)}
    assert exists == created
    output = template["Outputs"]["CalloutDomainUrl"]
    assert condition_values(template, refs=parameters)[output["Condition"]] == bool(created)
    if created:
        assert resolve(output["Value"], template, refs=parameters) == "https://callouts.example.com/callouts"


def test_a_late_probe_minute_alone_cannot_fire_the_breaker_alarm(template: Template) -> None:
    # Missing data breaches, so the alarm must need several periods: one late EMF line is one missing minute.
    breaker = props(template, "BreakerOpenAlarm")
    assert breaker["TreatMissingData"] == "breaching"
    periods = template["Parameters"][breaker["EvaluationPeriods"]["Ref"]]
    assert breaker["DatapointsToAlarm"] == breaker["EvaluationPeriods"]
    assert int(periods["MinValue"]) >= 3
    assert int(periods["MaxValue"]) * int(breaker["Period"]) <= 24 * 3600  # CloudWatch's longest evaluation


def test_the_mapping_serves_the_callout_stage_at_the_domain_root(template: Template) -> None:
    mapping = props(template, "CalloutDomainMapping")
    assert "BasePath" not in mapping  # https://<domain>/callouts, like <execute-api>/<stage>/callouts
    assert mapping["RestApiId"] == {"Ref": "CalloutApi"}
    assert mapping["Stage"] == {"Ref": "CalloutApi.Stage"}
    assert props(template, "CalloutDomain")["RegionalCertificateArn"] == {"Ref": "CalloutCertificateArn"}


# --- The resolver's conditions ----------------------------------------------------------------------------

CONDITIONS: Template = {
    "Parameters": {"A": {"Type": "String", "Default": ""}, "B": {"Type": "String", "Default": "x"}},
    "Conditions": {
        "HasA": {"Fn::Not": [{"Fn::Equals": [{"Ref": "A"}, ""]}]},
        "HasB": {"Fn::Not": [{"Fn::Equals": [{"Ref": "B"}, ""]}]},
        "Both": {"Fn::And": [{"Condition": "HasA"}, {"Condition": "HasB"}]},
        "Either": {"Fn::Or": [{"Condition": "HasA"}, {"Condition": "HasB"}]},
    },
    "Resources": {"R": {"Type": "AWS::SNS::Topic", "Condition": "Both"}},
}


def test_conditions_are_evaluated_from_defaults_and_refs() -> None:
    assert condition_values(CONDITIONS) == {"HasA": False, "HasB": True, "Both": False, "Either": True}
    assert condition_values(CONDITIONS, refs={"A": "1", "B": ""}) == {
        "HasA": True,
        "HasB": False,
        "Both": False,
        "Either": True,
    }
    assert resource_exists(CONDITIONS, "R", refs={"A": "1"}) is True
    assert resource_exists(CONDITIONS, "R") is False


def test_fn_if_chooses_a_branch_and_no_value_removes_the_property_or_element() -> None:
    value = {
        "Keep": 1,
        "Gone": {"Fn::If": ["HasA", "a", {"Ref": "AWS::NoValue"}]},
        "List": [
            {"Fn::If": ["HasB", {"Ref": "B"}, {"Ref": "AWS::NoValue"}]},
            {"Fn::If": ["HasA", "a", {"Ref": "AWS::NoValue"}]},
        ],
    }
    assert apply_conditions(value, CONDITIONS) == {"Keep": 1, "List": [{"Ref": "B"}]}
    assert resolve({"Fn::If": ["HasB", {"Ref": "B"}, "none"]}, CONDITIONS) == "x"
    assert resolve({"Fn::If": ["HasA", "a", {"Ref": "AWS::NoValue"}]}, CONDITIONS) is None


@pytest.mark.parametrize(
    "conditions",
    [
        {"Loop": {"Fn::Not": [{"Condition": "Loop"}]}},
        {"Unknown": {"Fn::Not": [{"Condition": "Nowhere"}]}},
        {"Deployed": {"Fn::Equals": [{"Ref": "SomeQueue"}, ""]}},
        {"Odd": {"Fn::Contains": [["a"], "a"]}},
    ],
    ids=["self-reference", "unknown condition", "unresolvable operand", "unsupported function"],
)
def test_a_condition_that_cannot_be_evaluated_is_an_error_not_a_guess(conditions: dict[str, Any]) -> None:
    with pytest.raises(TemplateError):
        condition_values({"Conditions": conditions, "Resources": {}})


def test_the_zuora_secret_placeholder_has_the_shape_the_zuora_client_reads(template: Template) -> None:
    # Given the ZuoraSecret as deployed, before an operator fills it in
    spec = template["Resources"]["ZuoraSecret"]
    placeholder = json.loads(spec["Properties"]["SecretString"])

    # Then it is ZuoraCredentials' shape (production's base URL), retained, and read by the sweeps and by the sync
    # (one record by Id, for two changes of one second)
    credentials = ZuoraCredentials.model_validate(placeholder)
    assert credentials.base == "https://rest.zuora.com"
    assert (spec["DeletionPolicy"], spec["UpdateReplacePolicy"]) == ("Retain", "Retain")
    readers = [
        name
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function" and "ZuoraSecret" in json.dumps(resource)
    ]
    assert sorted(readers) == ["BackfillFunction", "ReconcileFunction", "SyncFunction"]


# --- Reconciliation (issue 12) ------------------------------------------------------------------------------

RECONCILE = "ReconcileFunction"
RECONCILE_POLICIES = [
    {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": {"Ref": "ZuoraSecret"}}},
    {
        "Statement": [
            {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": ["CalloutQueue", "Arn"]}},
            {
                "Effect": "Allow",
                # Scan: the daily lost-deletes sweep lists the records written to Salesforce.
                "Action": [
                    "dynamodb:GetItem",
                    "dynamodb:BatchGetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:Scan",
                ],
                "Resource": {"Fn::GetAtt": ["SyncStateTable", "Arn"]},
            },
        ]
    },
]


def _rate_seconds(expression: str) -> int | None:
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression)
    if match is None:
        return None
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    return int(match.group(1)) * unit


def reconcile_problems(template: Template) -> list[str]:
    """The reconcile function: scheduled by ReconcileSchedule ("off" disables the rule), never retried (the next
    run resumes), a timeout shorter than the default interval, and exactly its three least-privilege policies."""
    problems = []
    reconcile = props(template, RECONCILE)
    schedules = [e["Properties"] for e in reconcile.get("Events", {}).values() if e.get("Type") == "Schedule"]
    if len(schedules) != 1:
        return [f"{RECONCILE} has {len(schedules)} Schedule events, not 1"]
    [schedule] = schedules
    for value in ("off", parameter_defaults(template)["ReconcileSchedule"]):
        on = condition_values(template, refs={"ReconcileSchedule": str(value)})["ReconcileScheduled"]
        chosen = apply_conditions(schedule, template, refs={"ReconcileSchedule": str(value)})
        expression = resolve(chosen["Schedule"], template, refs={"ReconcileSchedule": str(value)})
        if chosen.get("State") != ("ENABLED" if value != "off" else "DISABLED") or on != (value != "off"):
            problems.append(f"ReconcileSchedule {value!r} does not turn the rule {'on' if value != 'off' else 'off'}")
        if expression is None or (_rate_seconds(expression) is None and not expression.startswith("cron(")):
            problems.append(f"ReconcileSchedule {value!r} leaves the rule with expression {expression!r}")
    if schedule.get("RetryPolicy", {}).get("MaximumRetryAttempts") != 0:
        problems.append("EventBridge retries a failed reconcile invocation")
    if reconcile.get("EventInvokeConfig", {}).get("MaximumRetryAttempts") != 0:
        problems.append("Lambda retries a failed reconcile run (asynchronous invocation)")
    interval = _rate_seconds(str(parameter_defaults(template)["ReconcileSchedule"]))
    timeout = int(function_properties(template, RECONCILE)["Timeout"])
    if interval is None or timeout >= interval:
        problems.append(f"{RECONCILE} Timeout {timeout} s is not shorter than the default schedule's interval")
    if reconcile.get("Policies") != RECONCILE_POLICIES:
        problems.append(f"{RECONCILE}'s policies are {reconcile.get('Policies')}, not its least-privilege ones")
    return problems


def test_the_reconcile_function_follows_its_rules(template: Template) -> None:
    assert reconcile_problems(template) == []


RECONCILE_MISTAKES: dict[str, Callable[[Template], object]] = {
    "schedule_ignores_off": lambda t: props(t, RECONCILE)["Events"]["Schedule"]["Properties"].update(State="ENABLED"),
    "schedule_not_the_parameter": lambda t: props(t, RECONCILE)["Events"]["Schedule"]["Properties"].update(
        Schedule={"Ref": "ReconcileSchedule"}
    ),
    "eventbridge_retries": lambda t: props(t, RECONCILE)["Events"]["Schedule"]["Properties"].pop("RetryPolicy"),
    "lambda_retries": lambda t: props(t, RECONCILE).pop("EventInvokeConfig"),
    "timeout_overlaps_the_next_run": lambda t: props(t, RECONCILE).update(Timeout=900),
    "reads_every_secret": lambda t: props(t, RECONCILE)["Policies"][0].update(
        AWSSecretsManagerGetSecretValuePolicy={"SecretArn": {"Ref": "SalesforceSecret"}}
    ),
    "sends_to_any_queue": lambda t: props(t, RECONCILE)["Policies"][1]["Statement"][0].update(Resource="*"),
    "extra_policy": lambda t: props(t, RECONCILE)["Policies"].append(
        {"DynamoDBCrudPolicy": {"TableName": {"Ref": "SyncHistoryTable"}}}
    ),
}


@pytest.mark.parametrize("mistake", RECONCILE_MISTAKES)
def test_a_reconcile_mistake_is_caught(template: Template, mistake: str) -> None:
    assert reconcile_problems(mutated(template, RECONCILE_MISTAKES[mistake])) != []


@pytest.mark.parametrize("value", ["off", "rate(15 minutes)", "rate(1 hour)", "cron(0/15 * * * ? *)"])
def test_the_reconcile_schedule_parameter_takes_off_or_an_expression(template: Template, value: str) -> None:
    assert _allowed(template, "ReconcileSchedule", value)


@pytest.mark.parametrize("value", ["", "Off", "none", "every 15 minutes", "rate(15 minutes) "])
def test_the_reconcile_schedule_parameter_refuses_anything_else(template: Template, value: str) -> None:
    assert not _allowed(template, "ReconcileSchedule", value)


def test_the_reconcile_parameters_reach_its_settings_with_the_code_s_defaults(template: Template) -> None:
    # Given the template's defaults and each bound of the parameters, as the function would see them
    settings = settings_from_template(template, RECONCILE)
    assert isinstance(settings, ReconcileSettings)
    # Then the defaults are the settings model's own, and the zuora secret is the ZuoraSecret
    assert (settings.overlap_seconds, settings.settle_seconds, settings.lookback_hours) == (300, 120, 24)
    assert settings.deletes_hour == 3
    assert settings.zuora_secret_id == STUB_REFS["ZuoraSecret"]
    variables = props(template, RECONCILE)["Environment"]["Variables"]
    assert variables["RECONCILE_OVERLAP_SECONDS"] == {"Ref": "ReconcileOverlapSeconds"}
    assert variables["RECONCILE_SETTLE_SECONDS"] == {"Ref": "ReconcileSettleSeconds"}
    assert variables["RECONCILE_LOOKBACK_HOURS"] == {"Ref": "ReconcileLookbackHours"}
    assert variables["RECONCILE_DELETES_HOUR"] == {"Ref": "ReconcileDeletesHour"}


def test_the_reconciliation_alarms_watch_recovered_changes_and_failed_runs(template: Template) -> None:
    recovered = props(template, "RecoveredByReconciliationAlarm")
    assert (recovered["MetricName"], recovered["Dimensions"]) == (
        "RecoveredByReconciliation",
        [{"Name": "service", "Value": "reconcile"}],
    )
    assert (recovered["Statistic"], recovered["Period"], recovered["ComparisonOperator"]) == (
        "Sum",
        3600,
        "GreaterThanThreshold",
    )
    assert recovered["Threshold"] == {"Ref": "RecoveredAlarmThreshold"}
    assert recovered["TreatMissingData"] == "notBreaching"
    errors = props(template, "ReconcileErrorsAlarm")
    assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": RECONCILE}}]
