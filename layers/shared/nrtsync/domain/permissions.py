"""The permission set the integration user needs for a mapping, as Metadata API XML (Metadata API Developer
Guide, "PermissionSet": ``objectPermissions`` with ``allowCreate``/``allowRead``/``allowEdit``/``allowDelete``/
``modifyAllRecords``/``viewAllRecords``/``object``, and ``fieldPermissions`` with ``editable``/``field``/
``readable``).

Per mapped sObject: read, create, edit and delete (the sync upserts, and deletes what Zuora deleted), never
"modify all". Per field the mapping writes (the external id, ``copyIdTo``, fields, inherited fields, parent
lookups): read and edit. Left out: ``Name`` and required fields (a master-detail), on which Salesforce refuses
field permissions ("field-level security cannot be set on required fields"); the object permission covers them.
"""

from __future__ import annotations

from collections.abc import Collection
from xml.sax.saxutils import escape

from nrtsync.domain.mapping import MappingConfig

ALWAYS_LEFT_OUT = frozenset({"Name", "Id"})


def _lookup_field(relationship: str) -> str:
    return relationship[:-3] + "__c" if relationship.endswith("__r") else relationship + "Id"


def permission_fields(mapping: MappingConfig) -> dict[str, list[str]]:
    """sObject -> the fields the mapping writes there, sorted."""
    fields: dict[str, set[str]] = {}
    for obj in mapping.objects.values():
        names = fields.setdefault(obj.sobject, set())
        names |= {obj.external_id_field, *obj.copy_id_to}
        names |= {spec.to for spec in obj.fields.values()}
        names |= {inherited.to for inherited in obj.inherit.values()}
        names |= {_lookup_field(parent.relationship) for parent in obj.parents.values()}
    return {sobject: sorted(names) for sobject, names in sorted(fields.items())}


def permission_set_xml(
    mapping: MappingConfig,
    *,
    label: str = "nrtsync integration",
    required: Collection[str] = (),
) -> str:
    """The PermissionSet document; ``required``: ``SObject.Field`` names to leave out (the org's required fields)."""
    objects, field_rows = [], []
    for sobject, names in permission_fields(mapping).items():
        objects.append(
            "    <objectPermissions>\n"
            "        <allowCreate>true</allowCreate>\n"
            "        <allowDelete>true</allowDelete>\n"
            "        <allowEdit>true</allowEdit>\n"
            "        <allowRead>true</allowRead>\n"
            "        <modifyAllRecords>false</modifyAllRecords>\n"
            f"        <object>{escape(sobject)}</object>\n"
            "        <viewAllRecords>false</viewAllRecords>\n"
            "    </objectPermissions>\n"
        )
        field_rows += [
            "    <fieldPermissions>\n"
            "        <editable>true</editable>\n"
            f"        <field>{escape(sobject)}.{escape(name)}</field>\n"
            "        <readable>true</readable>\n"
            "    </fieldPermissions>\n"
            for name in names
            if name not in ALWAYS_LEFT_OUT and f"{sobject}.{name}" not in required
        ]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<PermissionSet xmlns="http://soap.sforce.com/2006/04/metadata">\n'
        "    <description>What nrtsync's integration user needs: the mapped objects and the fields it writes"
        "</description>\n"
        f"{''.join(field_rows)}"
        "    <hasActivationRequired>false</hasActivationRequired>\n"
        f"    <label>{escape(label)}</label>\n"
        f"{''.join(objects)}"
        "</PermissionSet>\n"
    )
