"""What AWS does with template.yaml that neither cfn-lint nor `sam validate --lint` knows about.

Alarms that reach someone and see stuck changes, an allow-list evaluated before authentication, partition-neutral
ARNs, table encryption chosen on purpose. As in test_template.py, each rule returns the problems it finds;
every rule passes on the real template and reports the mistake it is there for on a mutated copy.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nrtsync.observability.names import OLDEST_WAITING_CHANGE_AGE
from nrtsync_local.template import apply_conditions, load_template, parameter_defaults, resource_exists

Template = dict[str, Any]

CLOUDWATCH = "cloudwatch.amazonaws.com"
AWS_MANAGED_SNS_KEY = "alias/aws/sns"


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template()


def mutated(template: Template, change: Callable[[Template], object]) -> Template:
    copied = copy.deepcopy(template)
    change(copied)
    return copied


def props(template: Template, logical_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return properties


def resources_of_type(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in template["Resources"].items() if spec["Type"] == resource_type}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements_for(document: dict[str, Any], service: str) -> Iterator[dict[str, Any]]:
    for statement in document.get("Statement", []):
        principal = statement.get("Principal", {})
        if statement.get("Effect") == "Allow" and service in as_list(principal.get("Service", [])):
            yield statement


# --- Rules ------------------------------------------------------------------------------------------------


def alarm_topic_problems(template: Template) -> list[str]:
    """CloudWatch can publish to every topic the stack creates: its key's policy and the topic's grant it."""
    problems = []
    for name, spec in resources_of_type(template, "AWS::SNS::Topic").items():
        key = spec["Properties"].get("KmsMasterKeyId")
        if key is None:
            continue
        if isinstance(key, str):
            # An AWS managed key (alias/aws/sns) or any key outside the stack: its policy is not ours to check.
            problems.append(f"{name}: encrypted with {key}, whose policy cannot be shown to admit CloudWatch")
            continue
        key_id = (key.get("Fn::GetAtt") or [key.get("Ref")])[0]
        key_spec = template["Resources"].get(key_id, {})
        if key_spec.get("Type") != "AWS::KMS::Key":
            problems.append(f"{name}: its key {key_id} is not a KMS key of this stack")
            continue
        granted = {
            action
            for statement in statements_for(key_spec["Properties"]["KeyPolicy"], CLOUDWATCH)
            for action in as_list(statement["Action"])
        }
        if not {"kms:Decrypt", "kms:GenerateDataKey*"} <= granted:
            problems.append(f"{name}: the policy of {key_id} does not let CloudWatch encrypt for the topic")
        if key_spec.get("Condition") != spec.get("Condition"):
            problems.append(f"{name}: its key {key_id} is not created exactly when the topic is")
    for name in resources_of_type(template, "AWS::SNS::Topic"):
        policies = [
            policy
            for policy in resources_of_type(template, "AWS::SNS::TopicPolicy").values()
            if {"Ref": name} in policy["Properties"]["Topics"]
        ]
        if not any(
            "sns:Publish" in as_list(statement["Action"])
            for policy in policies
            for statement in statements_for(policy["Properties"]["PolicyDocument"], CLOUDWATCH)
        ):
            problems.append(f"{name}: no topic policy lets CloudWatch publish")
    return problems


def _evaluate(value: Any, parameters: dict[str, str]) -> Any:
    """The few intrinsics the resource policy uses (Ref to a parameter, Fn::Split, Fn::Join), as CloudFormation
    evaluates them."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return parameters[value["Ref"]]
    if isinstance(value, dict) and set(value) == {"Fn::Split"}:
        delimiter, text = value["Fn::Split"]
        return str(_evaluate(text, parameters)).split(delimiter)
    if isinstance(value, dict) and set(value) == {"Fn::Join"}:
        delimiter, items = value["Fn::Join"]
        return delimiter.join(_evaluate(items, parameters))
    if isinstance(value, dict):
        return {key: _evaluate(item, parameters) for key, item in value.items()}
    if isinstance(value, list):
        return [_evaluate(item, parameters) for item in value]
    return value


def resource_policy(template: Template, **parameters: str) -> list[dict[str, Any]]:
    """The callout API's resource policy statements with these parameter values, as API Gateway receives them."""
    values = parameter_defaults(template) | parameters
    statements = props(template, "CalloutApi")["Auth"].get("ResourcePolicy", {}).get("CustomStatements", [])
    applied = apply_conditions(statements, template, refs=parameters)
    evaluated: list[dict[str, Any]] = _evaluate(applied, values)
    return evaluated


def gateway_denies(statements: list[dict[str, Any]], source_ip: str) -> bool:
    """Whether API Gateway's first phase (explicit Deny only, before the authorizer) refuses this source."""
    address = ipaddress.ip_address(source_ip)
    for statement in statements:
        if statement["Effect"] != "Deny" or statement["Action"] != "execute-api:Invoke":
            continue
        if statement["Resource"] != "execute-api:/*":
            continue
        blocks = statement.get("Condition", {}).get("NotIpAddress", {}).get("aws:SourceIp")
        if blocks is None:
            return True
        networks = [ipaddress.ip_network(block) for block in blocks]
        if not any(address.version == network.version and address in network for network in networks):
            return True
    return False


ALLOWED = "52.8.224.0/24, 2001:db8::/32"
INSIDE = ("52.8.224.10", "2001:db8::1")
OUTSIDE = ("52.8.225.10", "203.0.113.7", "2001:db9::1")


def allow_list_problems(template: Template) -> list[str]:
    try:
        problems = _allow_list_problems(template)
    except ValueError as exc:
        problems = [f"CalloutApi: the resource policy's aws:SourceIp is not a list of CIDR blocks ({exc})"]
    # The function's own check stays as a second line
    variables = props(template, "IngestFunction")["Environment"]["Variables"]
    if variables.get("ALLOWED_SOURCE_CIDRS") != {"Ref": "AllowedSourceCidrs"}:
        problems.append("IngestFunction: no longer checks AllowedSourceCidrs itself")
    return problems


def _allow_list_problems(template: Template) -> list[str]:
    statements = resource_policy(template, AllowedSourceCidrs=ALLOWED)
    problems = [
        f"{ip}: inside AllowedSourceCidrs but denied by the API" for ip in INSIDE if gateway_denies(statements, ip)
    ]
    problems += [
        f"{ip}: outside AllowedSourceCidrs but reaches the authorizer"
        for ip in OUTSIDE
        if not gateway_denies(statements, ip)
    ]
    open_policy = resource_policy(template, AllowedSourceCidrs="")
    problems += [
        f"{ip}: denied although AllowedSourceCidrs is empty"
        for ip in INSIDE + OUTSIDE
        if gateway_denies(open_policy, ip)
    ]
    return problems


def waf_problems(template: Template) -> list[str]:
    problems = []
    parameter = template["Parameters"].get("WafRateLimitPer5Minutes", {})
    if parameter.get("Default") != "0":
        problems.append("WafRateLimitPer5Minutes: the web ACL is not off by default")
    pattern = parameter.get("AllowedPattern", "")
    for value, allowed in (("0", True), ("10", True), ("2000", True), ("9", False), ("-1", False), ("", False)):
        if bool(re.fullmatch(pattern, value)) != allowed:
            problems.append(f"WafRateLimitPer5Minutes: {value!r} {'refused' if allowed else 'accepted'}")
    for parameters, expected in (({}, False), ({"WafRateLimitPer5Minutes": "100"}, True)):
        for name in ("CalloutWebAcl", "CalloutWebAclAssociation"):
            if name not in template["Resources"] or resource_exists(template, name, refs=parameters) != expected:
                problems.append(f"{name}: created {not expected} with {parameters or 'the defaults'}")
    if "CalloutWebAcl" in template["Resources"]:
        [rule] = props(template, "CalloutWebAcl")["Rules"]
        rate = rule["Statement"].get("RateBasedStatement", {})
        if rate.get("Limit") != {"Ref": "WafRateLimitPer5Minutes"} or rate.get("AggregateKeyType") != "IP":
            problems.append("CalloutWebAcl: the rule is not a per-address rate limit on the parameter")
        if "Block" not in rule["Action"]:
            problems.append("CalloutWebAcl: the rule does not block")
    return problems


def waiting_age_problems(template: Template) -> list[str]:
    """An alarm on the sync's own age of the oldest waiting change, against the P90 SLO; SQS's as a backstop."""
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
    own = [
        spec["Properties"]
        for spec in alarms.values()
        if spec["Properties"].get("MetricName") == OLDEST_WAITING_CHANGE_AGE
        and spec["Properties"].get("Namespace") == {"Fn::Sub": "NrtSync/${AWS::StackName}"}
        and spec["Properties"].get("Dimensions") == [{"Name": "service", "Value": "sync"}]
    ]
    problems = [] if len(own) == 1 else [f"{len(own)} alarms on the sync's {OLDEST_WAITING_CHANGE_AGE}, not 1"]
    for alarm in own:
        if alarm.get("Statistic") != "Maximum" or alarm.get("ComparisonOperator") != "GreaterThanThreshold":
            problems.append("the waiting-age alarm does not fire on the oldest change over the threshold")
        if alarm.get("Threshold") != {"Ref": "LatencyP90SloSeconds"}:
            problems.append("the waiting-age alarm is not held against the P90 latency SLO")
    backstop = [
        spec
        for spec in alarms.values()
        if spec["Properties"].get("MetricName") == "ApproximateAgeOfOldestMessage"
        and spec["Properties"].get("Threshold") == {"Ref": "LatencyP90SloSeconds"}
    ]
    if not backstop:
        problems.append("SQS's ApproximateAgeOfOldestMessage alarm is gone; it is the backstop")
    return problems


RULES: dict[str, Callable[[Template], list[str]]] = {
    "alarm_topic": alarm_topic_problems,
    "allow_list": allow_list_problems,
    "waf": waf_problems,
    "waiting_age": waiting_age_problems,
}


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_template_follows_rule(template: Template, rule: Callable[[Template], list[str]]) -> None:
    assert rule(template) == []


def _deny(t: Template) -> dict[str, Any]:
    statement: dict[str, Any] = props(t, "CalloutApi")["Auth"]["ResourcePolicy"]["CustomStatements"][1]
    return statement


def _key_policy(t: Template) -> dict[str, Any]:
    policy: dict[str, Any] = props(t, "AlarmTopicKey")["KeyPolicy"]
    return policy


MISTAKES: dict[str, tuple[Callable[[Template], list[str]], Callable[[Template], object]]] = {
    "topic_on_the_aws_managed_key": (
        alarm_topic_problems,
        lambda t: props(t, "AlarmTopic").update(KmsMasterKeyId=AWS_MANAGED_SNS_KEY),
    ),
    "key_without_cloudwatch": (
        alarm_topic_problems,
        lambda t: _key_policy(t).update(Statement=_key_policy(t)["Statement"][:1]),
    ),
    "topic_without_policy": (
        alarm_topic_problems,
        lambda t: t["Resources"].pop("AlarmTopicPolicy"),
    ),
    "no_resource_policy": (allow_list_problems, lambda t: props(t, "CalloutApi")["Auth"].pop("ResourcePolicy")),
    "deny_always": (
        allow_list_problems,
        lambda t: props(t, "CalloutApi")["Auth"]["ResourcePolicy"]["CustomStatements"].__setitem__(
            1, _deny(t)["Fn::If"][1]
        ),
    ),
    "deny_on_spaced_list": (
        allow_list_problems,
        lambda t: _deny(t)["Fn::If"][1]["Condition"]["NotIpAddress"].update(
            {"aws:SourceIp": {"Fn::Split": [",", {"Ref": "AllowedSourceCidrs"}]}}
        ),
    ),
    "function_check_dropped": (
        allow_list_problems,
        lambda t: props(t, "IngestFunction")["Environment"]["Variables"].pop("ALLOWED_SOURCE_CIDRS"),
    ),
    "no_waiting_age_alarm": (waiting_age_problems, lambda t: t["Resources"].pop("WaitingChangeAgeAlarm")),
    "waiting_age_against_a_literal": (
        waiting_age_problems,
        lambda t: props(t, "WaitingChangeAgeAlarm").update(Threshold=600),
    ),
    "sqs_backstop_dropped": (waiting_age_problems, lambda t: t["Resources"].pop("CalloutQueueAgeAlarm")),
    "waf_on_by_default": (waf_problems, lambda t: t["Parameters"]["WafRateLimitPer5Minutes"].update(Default="100")),
    "waf_counting_only": (
        waf_problems,
        lambda t: props(t, "CalloutWebAcl")["Rules"][0].update(Action={"Count": {}}),
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


def test_cloudwatch_may_use_the_key_only_for_this_stacks_alarms(template: Template) -> None:
    for document in (_key_policy(template), props(template, "AlarmTopicPolicy")["PolicyDocument"]):
        [statement] = statements_for(document, CLOUDWATCH)
        source_arn = statement["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
        assert source_arn.endswith(":alarm:${AWS::StackName}-*")
        assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    # Every alarm's name starts with the stack name, so the condition admits all of them
    for name, spec in resources_of_type(template, "AWS::CloudWatch::Alarm").items():
        assert spec["Properties"]["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-"), name
    assert json.dumps(template).count(AWS_MANAGED_SNS_KEY) == 0


def _deployed_strings(node: Any, key: str = "") -> Iterator[str]:
    """Every string the template deploys; descriptions and parameter hints are text for a person."""
    if isinstance(node, dict):
        for name, value in node.items():
            yield from _deployed_strings(value, name)
    elif isinstance(node, list):
        for item in node:
            yield from _deployed_strings(item, key)
    elif isinstance(node, str) and key not in {"Description", "ConstraintDescription", "AlarmDescription"}:
        yield node


def test_no_arn_names_the_aws_partition(template: Template) -> None:
    # The stack deploys in aws-cn and aws-us-gov too: ARNs take ${AWS::Partition}, the state machine its
    # Partition substitution, the authorizer the partition of the method ARN it is given
    root = Path(__file__).resolve().parents[2]
    sources = [*sorted((root / "layers" / "shared" / "nrtsync").rglob("*.py")), *sorted(root.glob("functions/*/*.py"))]
    sources += sorted((root / "statemachine").glob("*.json"))
    assert [str(path.relative_to(root)) for path in sources if "arn:aws:" in path.read_text(encoding="utf-8")] == []
    assert [text for text in _deployed_strings(template) if "arn:aws:" in text] == []
