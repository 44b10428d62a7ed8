"""The demo's Zuora tenant: every change of the stream is made in the Zuora stand-in, whose event triggers then
send its callout, and which a reconcile sweep reads (whether or not the callout was ever delivered).

The stand-in holds each record's newest version, as a tenant does: field names are the mapping's Zuora names
(parent id fields such as ``AccountId`` included), ``Id``, and ``UpdatedDate`` as Zuora renders a dateTime (the
tenant's offset, milliseconds). An empty value is left out: Zuora's query leaves a null field out of a record
("Query", developer.zuora.com; see nrtsync_local/zuora/state.py), and its callout renders it as ``null`` ("send
empty strings as null"). A delete removes the record: Zuora's query no longer returns it, and its ``DELETE``
callout goes out.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from nrtsync_local.demo.steps import Version, zuora_date

if TYPE_CHECKING:
    from nrtsync_local.standin.process import ZuoraStandinClient


class DemoTenant:
    """Writes each change into the Zuora stand-in when it happens (one at a time, in the order they happen)."""

    def __init__(self, zuora: ZuoraStandinClient) -> None:
        self._zuora = zuora
        self._lock = threading.Lock()

    def happened(self, version: Version) -> None:
        with self._lock:
            if version.deleted:
                self._zuora.delete(version.object_type, [version.record_id])
            else:
                self._zuora.seed(version.object_type, [zuora_record(version)])


def zuora_record(version: Version) -> dict[str, Any]:
    """The record as Zuora holds it after this change."""
    if version.updated_date is None:
        raise RuntimeError(f"{version.object_type} {version.record_id} ({version.what}) has not happened yet")
    record: dict[str, Any] = {"Id": version.record_id, "UpdatedDate": zuora_date(version.updated_date)}
    record |= {name: value for name, value in version.fields.items() if value != ""}
    return record
