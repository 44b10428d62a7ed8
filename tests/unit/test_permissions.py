"""``nrtsync salesforce permissions``: a permission set granting what the mapping writes, and not the fields
Salesforce refuses field permissions on."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

from nrtsync.domain.mapping import load_mapping
from nrtsync.domain.permissions import permission_set_xml
from nrtsync_cli.cli import run

NS = {"md": "http://soap.sforce.com/2006/04/metadata"}
MAPPING = load_mapping()


def _parse(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 - our own output


def test_every_mapped_object_and_written_field_is_granted() -> None:
    root = _parse(permission_set_xml(MAPPING))

    objects = {e.findtext("md:object", namespaces=NS): e for e in root.findall("md:objectPermissions", NS)}
    fields = {e.findtext("md:field", namespaces=NS) for e in root.findall("md:fieldPermissions", NS)}

    assert set(objects) == {o.sobject for o in MAPPING.objects.values()}
    payment = objects["Zuora__Payment__c"]
    assert [payment.findtext(f"md:{p}", namespaces=NS) for p in ("allowCreate", "allowEdit", "allowDelete")] == [
        "true"
    ] * 3
    assert payment.findtext("md:modifyAllRecords", namespaces=NS) == "false"
    assert "Zuora__Payment__c.Zuora__Amount__c" in fields
    assert "Zuora__Subscription__c.Zuora__CustomerAccount__c" in fields  # the parent lookup
    assert "Zuora__ZInvoice__c.Zuora__Account__c" in fields  # an inherited field
    assert not any(f.endswith(".Name") for f in fields if f)


def test_required_fields_are_left_out() -> None:
    required = {"Zuora__CustomerAccount__c.Zuora__Account__c"}

    root = _parse(permission_set_xml(MAPPING, required=required))

    fields = {e.findtext("md:field", namespaces=NS) for e in root.findall("md:fieldPermissions", NS)}
    assert "Zuora__CustomerAccount__c.Zuora__Account__c" not in fields
    assert "Zuora__Subscription__c.Zuora__Account__c" in fields


def test_the_command_prints_it_offline() -> None:
    out = io.StringIO()

    code = run(["salesforce", "permissions", "--label", "Sync user"], out=out)

    assert code == 0
    assert _parse(out.getvalue()).findtext("md:label", namespaces=NS) == "Sync user"
