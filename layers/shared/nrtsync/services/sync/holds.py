"""Billing accounts without a CRM link: held instead of sent, and released when the link arrives.

``Zuora__CustomerAccount__c.Zuora__Account__c`` is a master-detail to Account: required when the record is created,
and it cannot be cleared; Zuora 360 syncs only billing accounts that carry a valid CRM Account Id. Sending an
account without ``CrmId`` would only be refused (``REQUIRED_FIELD_MISSING``), and its subscriptions, invoices and
payments would then wait for a parent that never comes. So such an account is held (outcome ``held``: not a
failure, no Salesforce call), and so is every change of a child whose account is held. When the account's change
with its ``CrmId`` is written, the session writes the held records too, in the same batched calls as any change.
A released change that must wait (a busy record, a row lock, Salesforce unavailable...) has no queue message of
its own: it is sent to the callout queue, with its retry delay, and leaves the hold only once the queue took it.

Whatever stays held after its account was written with the link (the queue or the state table failed) goes out
with the next change that names the account: the account's own (a duplicate too), or one of its children's.

A change that clears the link of an account already written with one keeps the link: the value last written
goes out again (never null on a master-detail), and a warning names the record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from nrtsync.domain.coalesce import IncomingChange
from nrtsync.domain.mapping import MappingConfig
from nrtsync.domain.models.callout import is_empty, record_key_of

HELD_MESSAGE_PREFIX = "held:"
"""The message id of a released change: it has no queue message, so one that must wait is sent to the queue anew."""


@dataclass
class HoldPlan:
    """What a session does with its claimed changes before building records."""

    send: list[IncomingChange] = field(default_factory=list)
    held: list[tuple[str, IncomingChange]] = field(default_factory=list)
    """(the account key the change waits for, the change)."""
    kept_link: list[IncomingChange] = field(default_factory=list)
    """Account changes that cleared their link: sent with the link last written instead (also in ``send``)."""


def accounts_to_read(mapping: MappingConfig, changes: Sequence[IncomingChange]) -> tuple[set[str], set[str]]:
    """(accounts whose last written link the changes need, accounts whose held state the changes need)."""
    unlinked, parents = set(), set()
    for incoming in changes:
        change = incoming.change
        obj = mapping.objects.get(change.object_type)
        if obj is None or change.is_delete:
            continue
        if obj.master_detail:
            if any(is_empty(change.fields.get(name)) for name in obj.master_detail):
                unlinked.add(change.record_key)
            continue
        for name, parent in obj.parents.items():
            if mapping.objects[parent.object].master_detail and not is_empty(change.fields.get(name)):
                parents.add(record_key_of(parent.object, str(change.fields[name])))
    return unlinked, parents


def plan_holds(
    mapping: MappingConfig,
    changes: Sequence[IncomingChange],
    *,
    links: Mapping[str, Mapping[str, str | None]],
    held_accounts: set[str],
) -> HoldPlan:
    """Which changes go to Salesforce and which are held. ``links``: the values last written of the accounts that
    lack their link (``VersionStore.kept_values``); ``held_accounts``: accounts with changes held already."""
    plan = HoldPlan()
    holding = set(held_accounts)
    for incoming in changes:
        change = incoming.change
        obj = mapping.objects.get(change.object_type)
        if obj is None or change.is_delete:
            plan.send.append(incoming)
            continue
        if obj.master_detail:
            missing = [name for name in obj.master_detail if is_empty(change.fields.get(name))]
            before = links.get(change.record_key, {})
            if not missing:
                plan.send.append(incoming)
            elif all(not is_empty(before.get(name)) for name in missing):
                fields = {**change.fields, **{name: before[name] for name in missing}}
                restored = IncomingChange(
                    incoming.message_id,
                    incoming.receipt_handle,
                    incoming.receive_count,
                    change.model_copy(update={"fields": fields}),
                )
                plan.send.append(restored)
                plan.kept_link.append(restored)
            else:
                plan.held.append((change.record_key, incoming))
                holding.add(change.record_key)
            continue
        waits_for = [
            record_key_of(parent.object, str(change.fields[name]))
            for name, parent in obj.parents.items()
            if not is_empty(change.fields.get(name))
            and record_key_of(parent.object, str(change.fields[name])) in holding
        ]
        if waits_for:
            plan.held.append((waits_for[0], incoming))
        else:
            plan.send.append(incoming)
    return plan


def linked_accounts(mapping: MappingConfig, changes: Sequence[IncomingChange]) -> set[str]:
    """The accounts among ``changes`` that carry every link: once written, their held changes go out."""
    linked = set()
    for incoming in changes:
        change = incoming.change
        obj = mapping.objects.get(change.object_type)
        if (
            obj is not None
            and obj.master_detail
            and not change.is_delete
            and all(not is_empty(change.fields.get(name)) for name in obj.master_detail)
        ):
            linked.add(change.record_key)
    return linked


def linked_keys(mapping: MappingConfig, kept: Mapping[str, Mapping[str, str | None]]) -> set[str]:
    """The account keys among ``kept`` (``VersionStore.kept_values``) written with every link."""
    linked = set()
    for key, values in kept.items():
        obj = mapping.objects.get(key.partition("#")[0])
        if obj is not None and obj.master_detail and all(not is_empty(values.get(name)) for name in obj.master_detail):
            linked.add(key)
    return linked
