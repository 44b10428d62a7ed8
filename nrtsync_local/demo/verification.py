"""What must be true at the end (the expectation, from the stream and the answers), what is (the observation,
from the stand-in, the failure list, the queues and the reconcile run), and every difference between the two.

Salesforce must hold what Zuora holds: a change whose callout Zuora gave up on counts as much as a delivered one
(only reconciliation brings it), and a record deleted in Zuora must be gone. So a run without reconciliation
fails, naming the records it left behind."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from nrtsync_local.demo.sender import Answer
from nrtsync_local.demo.steps import Deliver, DemoStream, GiveUp, Version
from nrtsync_local.stack import LocalDeployment

EXIT_OK, EXIT_MISMATCH = 0, 1


@dataclass(frozen=True)
class ExpectedRecord:
    label: str
    fields: dict[str, Any]
    lookups: dict[str, tuple[str, str]]
    """Lookup field -> (parent sObject, parent external id): the field must hold that parent's Salesforce Id."""


@dataclass
class Expectation:
    records: dict[str, dict[str, ExpectedRecord]]
    """sObject -> external id -> the newest valid version's mapped fields."""
    failures: dict[tuple[str, str], str]
    """(object type, Zuora id) -> error code expected on the failure list."""
    absent: dict[str, set[str]]
    """sObject -> external ids that must not be in Salesforce (refused, or only ever sent invalid)."""
    answers: list[Answer]
    external_id_field: dict[str, str] = field(default_factory=dict)
    deleted: dict[str, set[str]] = field(default_factory=dict)
    """sObject -> external ids deleted in Zuora: must not be in Salesforce."""
    recovered: set[tuple[str, str]] = field(default_factory=set)
    """(object type, Zuora id) the reconcile sweep must queue, and nothing else: the records Zuora has that
    Salesforce lacks: the lost changes. Not the refused account: its version is on the failure list, settled."""


@dataclass
class Observation:
    records: dict[str, list[dict[str, Any]]]
    failures: list[dict[str, Any]]
    queue: dict[str, int]
    dead_letters: int
    reconcile: dict[str, Any] | None = None
    """The reconcile function's result (``read``, ``queued``...); None when it did not run."""
    reconciled: set[tuple[str, str]] = field(default_factory=set)
    """Of ``Expectation.recovered``, the records whose trail shows a change queued by reconciliation."""


def expect(stream: DemoStream, answers: Sequence[Answer]) -> Expectation:
    """What Salesforce must hold: per record, the newest (by Zuora's updatedDate) change delivered validly."""
    from nrtsync.domain.mapping import build_record, load_mapping  # noqa: PLC0415 - the layer, once the stack set it up

    mapping = load_mapping()
    newest: dict[tuple[str, str], Version] = {}
    keyed: dict[tuple[str, str], tuple[str, str]] = {}  # a version's own key -> its record's (one per number)
    for phase in stream.phases:
        for step in phase.steps:
            # What Zuora holds: every change delivered validly, and those whose callouts Zuora gave up on.
            if (isinstance(step, Deliver) and step.expected_status == 200) or isinstance(step, GiveUp):
                version = step.version
                key = keyed.setdefault(version.key, _record_key(mapping, version))
                current = newest.get(key)
                if current is None or _rank(mapping, version) > _rank(mapping, current):
                    newest[key] = version
    records: dict[str, dict[str, ExpectedRecord]] = {obj.sobject: {} for obj in mapping.objects.values()}
    ext_fields = {obj.sobject: obj.external_id_field for obj in mapping.objects.values()}
    absent: dict[str, set[str]] = {}
    deleted: dict[str, set[str]] = {}
    for (object_type, record_id), version in sorted(newest.items()):
        obj = mapping.objects[object_type]
        if (object_type, record_id) in stream.refused:
            absent.setdefault(obj.sobject, set()).add(record_id)
            continue
        if version.deleted:
            deleted.setdefault(obj.sobject, set()).add(record_id)
            continue
        fields_in: dict[str, Any] = dict(version.fields)
        if obj.versions:
            fields_in["Id"] = version.record_id  # the version's own Zuora Id, written to copyIdTo
        built = build_record(mapping, object_type, record_id, fields_in)
        fields = {name: value for name, value in built.items() if not isinstance(value, dict)}
        lookups = {}
        for relationship, reference in built.items():
            if isinstance(reference, dict):
                parent = mapping.objects[_parent_object(mapping, object_type, relationship)]
                lookups[relationship.removesuffix("__r") + "__c"] = (
                    parent.sobject,
                    str(reference[parent.external_id_field]),
                )
        label = f"{object_type} {record_id} ({version.fields.get('Name') or _name_of(version)})"
        records[obj.sobject][record_id] = ExpectedRecord(label, fields, lookups)
    for object_type, record_id in stream.invalid_only:
        sobject = mapping.objects[object_type].sobject if object_type in mapping.objects else object_type
        ext_fields.setdefault(sobject, "Zuora__External_Id__c")
        absent.setdefault(sobject, set()).add(record_id)
    failures = dict.fromkeys(stream.refused, "FIELD_CUSTOM_VALIDATION_EXCEPTION")
    recovered = {key for key in stream.lost if not newest[keyed[key]].deleted}
    return Expectation(records, failures, absent, list(answers), ext_fields, deleted, recovered)


def _record_key(mapping: Any, version: Version) -> tuple[str, str]:
    """The Salesforce record a version lands in: a subscription's is its number (one record for all versions)."""
    versions = mapping.objects[version.object_type].versions
    if versions is None or versions.key not in version.fields:
        return version.key
    return (version.object_type, str(version.fields[versions.key]))


def _rank(mapping: Any, version: Version) -> tuple[int, datetime]:
    """Newest first by Zuora's Version (a versioned record), then by updatedDate."""
    versions = mapping.objects[version.object_type].versions
    rank = version.fields.get(versions.rank, "0") if versions is not None else "0"
    return (int(rank or 0), _date(version))


def _date(version: Version) -> datetime:
    if version.updated_date is None:
        raise RuntimeError(f"{version.key} was delivered without having happened")
    return version.updated_date


def _name_of(version: Version) -> str:
    for name in ("InvoiceNumber", "PaymentNumber"):
        if name in version.fields:
            return version.fields[name]
    return version.what


def _parent_object(mapping: Any, object_type: str, relationship: str) -> str:
    for parent in mapping.objects[object_type].parents.values():
        if parent.relationship == relationship:
            return str(parent.object)
    raise KeyError(relationship)


def observe(stack: LocalDeployment, expectation: Expectation, reconcile: dict[str, Any] | None = None) -> Observation:
    """What the stand-in, the failure list and the queues hold now, and what ``reconcile`` (the reconcile
    function's result, if it ran) queued."""
    standin = stack.standin
    if standin is None:
        raise RuntimeError("the demo needs the Salesforce stand-in")
    sobjects = sorted(set(expectation.records) | set(expectation.absent) | set(expectation.deleted))
    records = {sobject: standin.records(sobject) for sobject in sobjects}
    sqs = stack.client("sqs")
    dlq = sqs.get_queue_attributes(
        QueueUrl=stack.resources.dlq_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    operations = stack.operations()
    reconciled = {
        key
        for key in expectation.recovered
        if any(item.get("source") == "reconcile" for item in operations.trail(*key))
    }
    return Observation(
        records=records,
        failures=operations.failures(),
        queue=stack.queue_depth(),
        dead_letters=sum(int(value) for value in dlq.values()),
        reconcile=reconcile,
        reconciled=reconciled,
    )


def verify(expectation: Expectation, observation: Observation) -> list[str]:
    """Every difference between what must be true and what is, as one readable line each; empty when none."""
    problems = [
        f"callout {a.what!r} ({a.object_type or '-'} {a.record_id or '-'}): HTTP {a.status}, expected {a.expected}"
        for a in expectation.answers
        if not a.as_expected
    ]
    problems += _record_problems(expectation, observation)
    problems += _failure_list_problems(expectation, observation)
    problems += _reconcile_problems(expectation, observation)
    if any(observation.queue.values()):
        problems.append(f"callout queue not empty: {observation.queue}")
    if observation.dead_letters:
        problems.append(f"dead-letter queue holds {observation.dead_letters} message(s)")
    return problems


def _reconcile_problems(expectation: Expectation, observation: Observation) -> list[str]:
    """The sweep queued exactly the records Zuora has and Salesforce lacked: each one (its trail says so), and
    no more (its count)."""
    wanted = len(expectation.recovered)
    if observation.reconcile is None:
        return [f"reconciliation did not run: the {wanted} record(s) Zuora has and Salesforce lacked were never queued"]
    problems = [
        f"{object_type} {record_id}: not queued by reconciliation (no change with source reconcile in its trail)"
        for object_type, record_id in sorted(expectation.recovered - observation.reconciled)
    ]
    queued = observation.reconcile.get("queued")
    if queued != wanted:
        problems.append(
            f"reconciliation queued {queued} change(s), expected exactly {wanted}: the records Salesforce lacked"
        )
    if observation.reconcile.get("errors"):
        problems.append(f"reconciliation reported errors: {observation.reconcile}")
    return problems


def _record_problems(expectation: Expectation, observation: Observation) -> list[str]:
    def ext_field(sobject: str) -> str:
        return expectation.external_id_field.get(sobject, "Zuora__External_Id__c")

    held = {
        sobject: {str(r.get(ext_field(sobject))): r for r in records}
        for sobject, records in observation.records.items()
    }
    problems: list[str] = []
    for sobject in sorted(set(expectation.records) | set(expectation.absent) | set(expectation.deleted)):
        stored = held.get(sobject, {})
        expected = expectation.records.get(sobject, {})
        for record_id, wanted in expected.items():
            record = stored.get(record_id)
            if record is None:
                problems.append(f"{sobject} {wanted.label}: missing in Salesforce")
            else:
                problems += _field_problems(sobject, wanted, record, held)
        for record_id in sorted(set(stored) - set(expected)):
            why = (
                "deleted in Zuora"
                if record_id in expectation.deleted.get(sobject, set())
                else "refused or only ever sent invalid"
                if record_id in expectation.absent.get(sobject, set())
                else "never sent"
            )
            name = stored[record_id].get("Name")
            problems.append(f"{sobject} {record_id}: in Salesforce but must not be ({why}); Name {name!r}")
    return problems


def _field_problems(
    sobject: str, wanted: ExpectedRecord, record: dict[str, Any], held: dict[str, dict[str, dict[str, Any]]]
) -> list[str]:
    problems = [
        f"{sobject} {wanted.label}: {name} expected {value!r}, Salesforce has {record.get(name)!r}"
        for name, value in wanted.fields.items()
        if record.get(name) != value
    ]
    for name, (parent_sobject, parent_ext) in wanted.lookups.items():
        parent_id = held.get(parent_sobject, {}).get(parent_ext, {}).get("Id")
        if parent_id is None or record.get(name) != parent_id:
            problems.append(
                f"{sobject} {wanted.label}: {name} expected the Id of {parent_sobject} {parent_ext} "
                f"({parent_id or 'not in Salesforce'}), Salesforce has {record.get(name)!r}"
            )
    return problems


def _failure_list_problems(expectation: Expectation, observation: Observation) -> list[str]:
    listed = {
        (str(f.get("object_type")), str(f.get("record_id"))): str(f.get("error_code")) for f in observation.failures
    }
    problems: list[str] = []
    for (object_type, record_id), code in sorted(expectation.failures.items()):
        found = listed.get((object_type, record_id))
        if found is None:
            problems.append(f"failure list: {object_type} {record_id} missing (expected {code})")
        elif found != code:
            problems.append(f"failure list: {object_type} {record_id} has {found}, expected {code}")
    problems += [
        f"failure list: unexpected {object_type} {record_id} ({code})"
        for (object_type, record_id), code in sorted(listed.items())
        if (object_type, record_id) not in expectation.failures
    ]
    return problems


def print_verdict(problems: Sequence[str], out: TextIO) -> int:
    """The verdict and the exit status: 0 when nothing differs, else the diff and 1."""
    if not problems:
        print("RESULT: OK", file=out)
        return EXIT_OK
    print(f"RESULT: FAILED, {len(problems)} difference(s) between what was sent and what Salesforce holds:", file=out)
    for problem in problems:
        print(f"  - {problem}", file=out)
    return EXIT_MISMATCH


def verification_summary(expectation: Expectation, observation: Observation, out: TextIO) -> None:
    expected = sum(len(records) for records in expectation.records.values())
    held = sum(len(records) for records in observation.records.values())
    absent = sum(len(ids) for ids in expectation.absent.values())
    refused = sum(1 for a in expectation.answers if a.expected != 200)
    deleted = sum(len(ids) for ids in expectation.deleted.values())
    listed = len({(f.get("object_type"), f.get("record_id")) for f in observation.failures})
    queued = "did not run" if observation.reconcile is None else f"queued {observation.reconcile.get('queued')}"
    print(
        f"  Salesforce holds {held} records; expected exactly {expected}, each with the newest valid version's mapped "
        f"fields and its parent lookups,\n  and none of the {absent} refused or only-invalid ones. Failure list: "
        f"{len(observation.failures)} entries for {listed} record(s) (expected {len(expectation.failures)}; "
        f"reconciliation tries the refused one again). Queue {observation.queue}, "
        f"dead letters {observation.dead_letters}. Refused callouts expected: {refused}.\n  Deleted in Zuora, "
        f"must be gone: {deleted}. Reconciliation {queued}, expected exactly {len(expectation.recovered)} "
        f"(each with source reconcile in its trail: {len(observation.reconciled)}).",
        file=out,
    )
