"""Read ``template.yaml`` so that tests and the local stack build their resources from the template itself.

Queues, tables and function environments on this machine come from the same properties that CloudFormation
deploys, so a change to the template changes them too and the two cannot drift. Intrinsic functions are
resolved from parameter defaults and from names the caller supplies (``refs``); what cannot be resolved is
reported as ``None`` rather than guessed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the pinned dev requirements

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "template.yaml"

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class TemplateError(ValueError):
    """The template does not have what the caller asked for (missing resource, unexpected shape)."""


class _CloudFormationLoader(yaml.SafeLoader):  # type: ignore[misc]  # yaml is untyped here
    """A safe YAML loader that turns CloudFormation short tags (``!Ref``, ``!Sub``...) into their long form."""


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - PyYAML has no other node kinds
        raise TemplateError(f"unexpected YAML node for !{tag_suffix}")
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The template as plain data, short tags in their long form (``!Ref X`` -> ``{"Ref": "X"}``)."""
    source = Path(path) if path is not None else TEMPLATE_PATH
    with source.open(encoding="utf-8") as stream:
        loaded = yaml.load(stream, Loader=_CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(loaded, dict) or "Resources" not in loaded:
        raise TemplateError(f"{source} is not a CloudFormation template")
    return loaded


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, str]:
    """Each parameter's default as CloudFormation passes it: a string (``2`` -> ``"2"``)."""
    return {
        name: _as_text(spec["Default"]) for name, spec in template.get("Parameters", {}).items() if "Default" in spec
    }


def resource(template: Mapping[str, Any], logical_id: str, resource_type: str | None = None) -> dict[str, Any]:
    """One resource by logical id, optionally checking its type."""
    found = template.get("Resources", {}).get(logical_id)
    if not isinstance(found, dict):
        raise TemplateError(f"no resource {logical_id} in the template")
    if resource_type is not None and found.get("Type") != resource_type:
        raise TemplateError(f"{logical_id} is a {found.get('Type')}, not a {resource_type}")
    return found


# What ``!Ref AWS::NoValue`` leaves: the property (or list element) is removed, as CloudFormation removes it.
_NO_VALUE = {"Ref": "AWS::NoValue"}


def condition_values(template: Mapping[str, Any], *, refs: Mapping[str, str] | None = None) -> dict[str, bool]:
    """Every entry of ``Conditions``, evaluated from parameter defaults (``refs`` overrides them).

    Supports what conditions may use: ``Fn::Equals``, ``Fn::Not``, ``Fn::And``, ``Fn::Or`` and ``Condition``.
    A condition that depends on something not resolvable here raises ``TemplateError``.
    """
    conditions = _Conditions(template, refs)
    return {name: conditions.named(name, ()) for name in template.get("Conditions", {}) or {}}


class _Conditions:
    def __init__(self, template: Mapping[str, Any], refs: Mapping[str, str] | None) -> None:
        self.template = template
        self.refs = refs
        self.specs: Mapping[str, Any] = template.get("Conditions", {}) or {}
        self.values: dict[str, bool] = {}

    def named(self, name: str, trail: tuple[str, ...]) -> bool:
        if name in trail:
            raise TemplateError(f"condition {name} refers to itself through {' -> '.join(trail)}")
        if name not in self.specs:
            raise TemplateError(f"no condition {name} in the template")
        if name not in self.values:
            self.values[name] = self.evaluate(self.specs[name], (*trail, name))
        return self.values[name]

    def evaluate(self, node: Any, trail: tuple[str, ...]) -> bool:
        function: str = ""
        argument: Any = None
        if isinstance(node, Mapping) and len(node) == 1:
            [(function, argument)] = node.items()
        if function == "Condition":
            return self.named(str(argument), trail)
        if function == "Fn::Equals":
            left, right = (_condition_operand(item, self.template, self.refs) for item in argument)
            return left == right
        if function == "Fn::Not":
            return not self.evaluate(argument[0], trail)
        if function in {"Fn::And", "Fn::Or"}:
            results = [self.evaluate(item, trail) for item in argument]
            return all(results) if function == "Fn::And" else any(results)
        raise TemplateError(f"condition {' -> '.join(trail)} uses {node!r}, which is not evaluated here")


def _condition_operand(value: Any, template: Mapping[str, Any], refs: Mapping[str, str] | None) -> str:
    resolved = resolve(value, template, refs=refs)
    if resolved is None:
        raise TemplateError(f"condition operand {value!r} cannot be resolved without a deployed stack")
    return resolved


def apply_conditions(value: Any, template: Mapping[str, Any], *, refs: Mapping[str, str] | None = None) -> Any:
    """``value`` with every ``Fn::If`` replaced by its chosen branch and every ``AWS::NoValue`` removed.

    Conditions are evaluated as :func:`condition_values` does; other intrinsics are left as they are. A value
    that is itself ``AWS::NoValue`` (or an ``Fn::If`` choosing it) comes back as None.
    """
    return _apply(value, condition_values(template, refs=refs))


def _apply(value: Any, conditions: Mapping[str, bool]) -> Any:
    if isinstance(value, Mapping):
        if value == _NO_VALUE:
            return None
        if set(value) == {"Fn::If"}:
            name, when_true, when_false = value["Fn::If"]
            if name not in conditions:
                raise TemplateError(f"Fn::If names no condition of the template: {name}")
            return _apply(when_true if conditions[name] else when_false, conditions)
        applied = {key: _apply(item, conditions) for key, item in value.items()}
        return {key: item for key, item in applied.items() if item is not None}
    if isinstance(value, list):
        applied_items = [_apply(item, conditions) for item in value]
        return [item for item in applied_items if item is not None]
    return value


def resource_exists(template: Mapping[str, Any], logical_id: str, *, refs: Mapping[str, str] | None = None) -> bool:
    """Whether the resource is created with these parameters: it has no ``Condition``, or its condition holds."""
    condition = resource(template, logical_id).get("Condition")
    return condition is None or condition_values(template, refs=refs)[str(condition)]


def resolve(value: Any, template: Mapping[str, Any], *, refs: Mapping[str, str] | None = None) -> str | None:
    """A property value as the string CloudFormation would pass, or None when it depends on a deployed resource.

    Parameters resolve to their defaults. ``refs`` supplies everything else, keyed as CloudFormation names it:
    a logical id (``CalloutQueue``), ``Resource.Attribute`` for ``!GetAtt`` and pseudo parameters
    (``AWS::StackName``); an entry in ``refs`` also overrides a parameter's default.
    """
    names = {**parameter_defaults(template), **(refs or {})}
    if isinstance(value, Mapping) and set(value) == {"Fn::If"}:
        # The branch the conditions choose; AWS::NoValue stays a Ref that names nothing, so it resolves to None.
        value = apply_conditions(value, template, refs=refs) or _NO_VALUE
    if isinstance(value, Mapping):
        if set(value) == {"Ref"}:
            return names.get(str(value["Ref"]))
        if set(value) == {"Fn::GetAtt"}:
            target = value["Fn::GetAtt"]
            key = ".".join(target) if isinstance(target, list) else str(target)
            return names.get(key)
        if set(value) == {"Fn::Sub"}:
            return _resolve_sub(value["Fn::Sub"], template, names)
        return None
    if isinstance(value, list):
        return None
    return _as_text(value)


def _resolve_sub(spec: Any, template: Mapping[str, Any], names: Mapping[str, str]) -> str | None:
    if isinstance(spec, list):
        text, local = spec[0], spec[1]
        scope = dict(names)
        for key, inner in local.items():
            resolved = resolve(inner, template, refs=names)
            if resolved is None:
                return None
            scope[key] = resolved
    else:
        text, scope = spec, dict(names)
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if name not in scope:
            missing.append(name)
            return ""
        return scope[name]

    result = _SUB_VARIABLE.sub(substitute, str(text)).replace("${!", "${")
    return None if missing else result


def queue_attributes(template: Mapping[str, Any], logical_id: str, *, dlq_arn: str | None = None) -> dict[str, str]:
    """``Attributes`` for SQS CreateQueue, from an ``AWS::SQS::Queue``'s properties.

    A queue with a redrive policy needs ``dlq_arn`` (the dead-letter queue's ARN where it runs); its
    ``maxReceiveCount`` is resolved from the parameter defaults.
    """
    properties = resource(template, logical_id, "AWS::SQS::Queue").get("Properties", {})
    attributes: dict[str, str] = {}
    for name in (
        "DelaySeconds",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds",
        "VisibilityTimeout",
        "SqsManagedSseEnabled",
        "FifoQueue",
        "ContentBasedDeduplication",
    ):
        if name in properties:
            attributes[name] = _required(properties[name], template, f"{logical_id}.{name}")
    redrive = properties.get("RedrivePolicy")
    if redrive is not None:
        if dlq_arn is None:
            raise TemplateError(f"{logical_id} has a redrive policy: pass the dead-letter queue's ARN as dlq_arn")
        max_receive = _required(redrive["maxReceiveCount"], template, f"{logical_id}.RedrivePolicy.maxReceiveCount")
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": int(max_receive)})
    return attributes


def redrive_target(template: Mapping[str, Any], logical_id: str) -> str | None:
    """The logical id of the queue's dead-letter queue, or None without a redrive policy."""
    properties = resource(template, logical_id, "AWS::SQS::Queue").get("Properties", {})
    redrive = properties.get("RedrivePolicy")
    if redrive is None:
        return None
    target = redrive.get("deadLetterTargetArn")
    if isinstance(target, Mapping) and "Fn::GetAtt" in target:
        return str(target["Fn::GetAtt"][0])
    raise TemplateError(f"{logical_id}'s deadLetterTargetArn is not a !GetAtt of a queue in the template")


def table_definition(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    """Keyword arguments for DynamoDB CreateTable (all but ``TableName``), from an ``AWS::DynamoDB::Table``."""
    properties = resource(template, logical_id, "AWS::DynamoDB::Table").get("Properties", {})
    definition: dict[str, Any] = {
        "KeySchema": [dict(key) for key in properties["KeySchema"]],
        "AttributeDefinitions": [dict(attribute) for attribute in properties["AttributeDefinitions"]],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    for name in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "ProvisionedThroughput"):
        if name in properties:
            definition[name] = properties[name]
    return definition


def ttl_attribute(template: Mapping[str, Any], logical_id: str) -> str | None:
    """The table's enabled time-to-live attribute, or None."""
    properties = resource(template, logical_id, "AWS::DynamoDB::Table").get("Properties", {})
    ttl = properties.get("TimeToLiveSpecification")
    if not ttl or not ttl.get("Enabled"):
        return None
    return str(ttl["AttributeName"])


def function_properties(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    """A ``AWS::Serverless::Function``'s properties with ``Globals.Function`` merged in, as SAM merges them.

    Maps merge (the function wins), lists concatenate (Globals first), other values are the function's.
    """
    own = resource(template, logical_id, "AWS::Serverless::Function").get("Properties", {})
    globals_ = template.get("Globals", {}).get("Function", {})
    merged: dict[str, Any] = _merge(globals_, own)
    return merged


def function_environment(
    template: Mapping[str, Any], logical_id: str, *, refs: Mapping[str, str] | None = None
) -> dict[str, str | None]:
    """The function's environment variables (Globals and its own), resolved as far as ``refs`` allows.

    Literal values and parameters come out as CloudFormation sets them; a variable that names a deployed
    resource (``!Ref CalloutQueue``) is None unless ``refs`` gives that resource's local name or URL.
    """
    variables = function_properties(template, logical_id).get("Environment", {}).get("Variables", {})
    return {name: resolve(value, template, refs=refs) for name, value in variables.items()}


def event_source(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    """The function's SQS event source mapping, numbers resolved from parameter defaults.

    Keys: ``Queue`` (the queue's logical id), ``BatchSize``, ``MaximumBatchingWindowInSeconds``,
    ``FunctionResponseTypes`` and ``MaximumConcurrency`` (None when not set).
    """
    events = resource(template, logical_id, "AWS::Serverless::Function").get("Properties", {}).get("Events", {})
    sqs_events = [event.get("Properties", {}) for event in events.values() if event.get("Type") == "SQS"]
    if len(sqs_events) != 1:
        raise TemplateError(f"{logical_id} has {len(sqs_events)} SQS event sources, expected exactly one")
    properties = sqs_events[0]
    queue = properties.get("Queue")
    if not (isinstance(queue, Mapping) and "Fn::GetAtt" in queue):
        raise TemplateError(f"{logical_id}'s SQS event Queue is not a !GetAtt of a queue in the template")
    window = properties.get("MaximumBatchingWindowInSeconds")
    concurrency = properties.get("ScalingConfig", {}).get("MaximumConcurrency")
    return {
        "Queue": str(queue["Fn::GetAtt"][0]),
        # Lambda's default batch size for SQS is 10 and its default batching window is 0.
        "BatchSize": int(_required(properties.get("BatchSize", 10), template, f"{logical_id}.BatchSize")),
        "MaximumBatchingWindowInSeconds": 0 if window is None else int(_required(window, template, "window")),
        "FunctionResponseTypes": list(properties.get("FunctionResponseTypes", [])),
        "MaximumConcurrency": None if concurrency is None else int(_required(concurrency, template, "concurrency")),
    }


# SAM's default for an authorizer's Identity.ReauthorizeEvery (AWS::Serverless::Api Auth, "LambdaRequestIdentity").
_SAM_DEFAULT_AUTHORIZER_TTL = 300


def api_authorizer(template: Mapping[str, Any], api_logical_id: str) -> dict[str, Any] | None:
    """The ``AWS::Serverless::Api``'s default Lambda authorizer, or None without one.

    Keys: ``Name``, ``Function`` (the authorizer function's logical id), ``IdentityHeaders`` (header names)
    and ``ReauthorizeEvery`` (seconds; 0 means no caching). Only what the local front emulates is accepted:
    a REQUEST authorizer whose identity sources are headers.
    """
    auth = resource(template, api_logical_id, "AWS::Serverless::Api").get("Properties", {}).get("Auth") or {}
    name = auth.get("DefaultAuthorizer")
    if name is None:
        return None
    spec = auth.get("Authorizers", {}).get(name)
    if not isinstance(spec, Mapping):
        raise TemplateError(f"{api_logical_id}'s DefaultAuthorizer {name} is not among its Authorizers")
    function_arn = spec.get("FunctionArn")
    if not (isinstance(function_arn, Mapping) and "Fn::GetAtt" in function_arn):
        raise TemplateError(f"authorizer {name}'s FunctionArn is not a !GetAtt of a function in the template")
    if spec.get("FunctionPayloadType") != "REQUEST":
        raise TemplateError(f"authorizer {name} is not a REQUEST authorizer; only those are emulated locally")
    identity = spec.get("Identity") or {}
    others = sorted(set(identity) - {"Headers", "ReauthorizeEvery"})
    if others:
        raise TemplateError(f"authorizer {name}'s identity sources {others} are not emulated locally")
    ttl = identity.get("ReauthorizeEvery", _SAM_DEFAULT_AUTHORIZER_TTL)
    return {
        "Name": str(name),
        "Function": str(function_arn["Fn::GetAtt"][0]),
        "IdentityHeaders": [str(header) for header in identity.get("Headers", [])],
        "ReauthorizeEvery": int(_required(ttl, template, f"{name}.ReauthorizeEvery")),
    }


def gateway_responses(
    template: Mapping[str, Any], api_logical_id: str, *, refs: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """The ``AWS::Serverless::Api``'s ``GatewayResponses``, by response type (``UNAUTHORIZED``...).

    Each is ``{"StatusCode": int | None, "Headers": {name: value}, "Templates": {content type: body}}``. Header
    values are API Gateway mapping values; only static ones (``"'text'"``) are accepted, returned unquoted.
    """
    responses = resource(template, api_logical_id, "AWS::Serverless::Api").get("Properties", {}).get("GatewayResponses")
    result: dict[str, dict[str, Any]] = {}
    for response_type, spec in (responses or {}).items():
        where = f"{api_logical_id}.GatewayResponses.{response_type}"
        status = spec.get("StatusCode")
        headers: dict[str, str] = {}
        for name, value in (spec.get("ResponseParameters", {}).get("Headers") or {}).items():
            resolved = resolve(value, template, refs=refs)
            if resolved is None or len(resolved) < 2 or not (resolved[0] == resolved[-1] == "'"):
                raise TemplateError(f"{where} header {name} is not a static value in single quotes: {value!r}")
            headers[str(name)] = resolved[1:-1]
        templates = {
            str(content_type): _required(body, template, f"{where}.{content_type}")
            for content_type, body in (spec.get("ResponseTemplates") or {}).items()
        }
        result[str(response_type)] = {
            "StatusCode": None if status is None else int(_required(status, template, f"{where}.StatusCode")),
            "Headers": headers,
            "Templates": templates,
        }
    return result


def _required(value: Any, template: Mapping[str, Any], where: str) -> str:
    resolved = resolve(value, template)
    if resolved is None:
        raise TemplateError(f"{where} cannot be resolved without a deployed stack: {value!r}")
    return resolved


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(override, list):
        return [*base, *override]
    return override


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
