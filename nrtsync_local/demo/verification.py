"""What must be true at the end (the expectation, from the stream), what is (the observation, from the Zuora
stand-in's delivery history, the Salesforce stand-in, the failure list, the queues and the reconcile run), and
every difference between the two.

Every change's callout must have reached the endpoint (challenged first, as non-preemptive Basic is), or been
given up on by Zuora where the stream says so, and no callout may come from anything but the changes. Salesforce
must hold what Zuora holds: a change whose callout Zuora gave up on counts as much as a delivered one (only
reconciliation brings it), and a record deleted in Zuora must be gone. So a run without reconciliation fails,
naming the records it left behind."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from nrtsync_local.demo.changes import Attempt
from nrtsync_local.demo.steps import Change, DemoStream, Version, zuora_date
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
    """sObject -> external ids that must not be in Salesforce (refused by the org)."""
    changes: list[Change]
    """Every change made in Zuora: each one's callout must reach the endpoint, or be given up on (``given_up``)."""
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
    attempts: list[Attempt] = field(default_factory=list)
    """The Zuora stand-in's delivery history (phases not told apart: 0)."""
    reconcile: dict[str, Any] | None = None
    """The reconcile function's result (``read``, ``queued``...); None when it did not run."""
    reconciled: set[tuple[str, str]] = field(default_factory=set)
    """Of ``Expectation.recovered``, the records whose trail shows a change queued by reconciliation."""


def expect(stream: DemoStream) -> Expectation:
    """What Salesforce must hold: per record, the newest (by Zuora's Version, then updatedDate) change made."""
    from nrtsync.domain.mapping import build_record, load_mapping  # noqa: PLC0415 - the layer, once the stack set it up

    mapping = load_mapping()
    newest: dict[tuple[str, str], Version] = {}
    keyed: dict[tuple[str, str], tuple[str, str]] = {}  # a version's own key -> its record's (one per number)
    # What Zuora holds: every change, those whose callouts Zuora gave up on included.
    for change in stream.changes:
        version = change.version
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
    failures = dict.fromkeys(stream.refused, "FIELD_CUSTOM_VALIDATION_EXCEPTION")
    recovered = {key for key in stream.lost if not newest[keyed[key]].deleted}
    return Expectation(records, failures, absent, stream.changes, ext_fields, deleted, recovered)


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
        raise RuntimeError(f"{version.key} was never made in Zuora")
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
    standin, zuora = stack.standin, stack.zuora
    if standin is None or zuora is None:
        raise RuntimeError("the demo needs the Salesforce and Zuora stand-ins")
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
        attempts=[Attempt.of(0, row) for row in zuora.callouts()["history"]],
        reconcile=reconcile,
        reconciled=reconciled,
    )


def verify(expectation: Expectation, observation: Observation) -> list[str]:
    """Every difference between what must be true and what is, as one readable line each; empty when none."""
    problems = _callout_problems(expectation, observation)
    problems += _record_problems(expectation, observation)
    problems += _failure_list_problems(expectation, observation)
    problems += _reconcile_problems(expectation, observation)
    if any(observation.queue.values()):
        problems.append(f"callout queue not empty: {observation.queue}")
    if observation.dead_letters:
        problems.append(f"dead-letter queue holds {observation.dead_letters} message(s)")
    return problems


def _callout_problems(expectation: Expectation, observation: Observation) -> list[str]:
    """Each change's callout, from the stand-in's history: one notification, delivered (or given up on after
    Zuora's last attempt, where the stream says so), every attempt that reached the endpoint challenged first and
    answered 200; and no attempt the changes do not explain."""
    explained: set[int] = set()
    problems: list[str] = []
    for change in expectation.changes:
        version = change.version
        label = f"{version.object_type} {version.record_id} ({version.what})"
        found = [
            (index, attempt)
            for index, attempt in enumerate(observation.attempts)
            if attempt.record_id == version.record_id and _is_callout_of(attempt, version)
        ]
        explained.update(index for index, _ in found)
        tries = [attempt for _, attempt in found]
        problems += _attempt_problems(label, change, tries)
    problems += [
        f"a callout no change of the stream made: {a.object_type} {a.record_id} {a.change} {a.updated_date} "
        f"(notification {a.notification_id}, attempt {a.attempt})"
        for index, a in enumerate(observation.attempts)
        if index not in explained
    ]
    return problems


def _is_callout_of(attempt: Attempt, version: Version) -> bool:
    # A delete's UpdatedDate is the deletion's, which the stand-in sets: the delete is told apart by its change type.
    if version.deleted:
        return attempt.change == "DELETE"
    return attempt.change != "DELETE" and attempt.updated_date == zuora_date(_date(version))


def _attempt_problems(label: str, change: Change, tries: Sequence[Attempt]) -> list[str]:
    notifications = {attempt.notification_id for attempt in tries}
    if len(notifications) != 1:
        return [f"{label}: {len(notifications)} notifications in Zuora's history, expected exactly 1"]
    problems = [
        f"{label}: the endpoint answered attempt {a.attempt} with HTTP {a.status}"
        for a in tries
        if a.status is not None and a.status != 200
    ]
    problems += [
        f"{label}: attempt {a.attempt} reached the endpoint without a 401 challenge first (preemptive?)"
        for a in tries
        if a.reached_endpoint and not a.challenged
    ]
    last = tries[-1]
    if change.fault == "given_up":
        if any(a.delivered for a in tries) or not last.given_up or last.attempt != last.attempt_limit:
            problems.append(
                f"{label}: expected Zuora to give up on its callout after {last.attempt_limit} unanswered attempts; "
                f"its history: {[(a.attempt, a.status, a.delivered) for a in tries]}"
            )
    elif not any(a.delivered for a in tries):
        problems.append(
            f"{label}: its callout never reached the endpoint ({len(tries)} attempt(s), last HTTP {last.status}"
            + (f", {last.error}" if last.error else "")
            + ")"
        )
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
                else "refused by the org"
                if record_id in expectation.absent.get(sobject, set())
                else "never made in Zuora"
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
    deleted = sum(len(ids) for ids in expectation.deleted.values())
    given_up = sum(1 for change in expectation.changes if change.fault == "given_up")
    notifications = len({a.notification_id for a in observation.attempts})
    listed = len({(f.get("object_type"), f.get("record_id")) for f in observation.failures})
    queued = "did not run" if observation.reconcile is None else f"queued {observation.reconcile.get('queued')}"
    print(
        f"  Zuora's history: {notifications} notifications, {len(observation.attempts)} attempts, for "
        f"{len(expectation.changes)} changes: each change's callout delivered,\n  but the {given_up} Zuora gave up on "
        f"after its last attempt; every attempt that reached the endpoint challenged first, none answered but 200.\n"
        f"  Salesforce holds {held} records; expected exactly {expected}, each with the newest valid version's mapped "
        f"fields and its parent lookups,\n  and not the {absent} the org refuses. Failure list: "
        f"{len(observation.failures)} entries for {listed} record(s) (expected {len(expectation.failures)}; "
        f"reconciliation tries the refused one again). Queue {observation.queue}, "
        f"dead letters {observation.dead_letters}.\n  Deleted in Zuora, "
        f"must be gone: {deleted}. Reconciliation {queued}, expected exactly {len(expectation.recovered)} "
        f"(each with source reconcile in its trail: {len(observation.reconciled)}).",
        file=out,
    )
